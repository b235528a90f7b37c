"""The runner's tools: workspace confinement, the shell switch, limits, timeouts."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentplane.runner.models import ActionRefusedError, ToolResult
from agentplane.runner.tools import OUTPUT_LIMIT_BYTES, READ_LIMIT_BYTES, Toolbox


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "workspace"


@pytest.fixture
def toolbox(workspace: Path) -> Toolbox:
    return Toolbox(workspace)


@pytest.fixture
def shell(workspace: Path) -> Toolbox:
    return Toolbox(workspace, allow_shell=True)


def run(box: Toolbox, tool: str, **args: Any) -> ToolResult:
    return box.run({"tool": tool, "args": args})


def refusal(box: Toolbox, tool: str, **args: Any) -> str:
    with pytest.raises(ActionRefusedError) as refused:
        run(box, tool, **args)
    return refused.value.reason


# -- files --------------------------------------------------------------------------


def test_the_workspace_is_created(workspace: Path, toolbox: Toolbox) -> None:
    assert workspace.is_dir()
    assert toolbox.workspace == workspace.resolve()


def test_write_then_read_round_trips(workspace: Path, toolbox: Toolbox) -> None:
    written = run(toolbox, "write_file", path="notes/day 1.txt", content="héllo\n")
    assert written == ToolResult("succeeded", {"path": "notes/day 1.txt", "bytes": 7})
    assert (workspace / "notes" / "day 1.txt").read_text() == "héllo\n"

    appended = run(toolbox, "write_file", path="notes/day 1.txt", content="again", append=True)
    assert appended.output["bytes"] == 5

    read = run(toolbox, "read_file", path="notes/day 1.txt")
    assert read == ToolResult(
        "succeeded", {"content": "héllo\nagain", "bytes": 12, "truncated": False}
    )


def test_write_replaces_unless_appending(toolbox: Toolbox) -> None:
    run(toolbox, "write_file", path="a.txt", content="first")
    run(toolbox, "write_file", path="a.txt", content="2nd")
    assert run(toolbox, "read_file", path="a.txt").output["content"] == "2nd"


def test_read_stops_at_one_mebibyte(workspace: Path, toolbox: Toolbox) -> None:
    (workspace / "big.bin").write_bytes(b"x" * (READ_LIMIT_BYTES + 10))
    read = run(toolbox, "read_file", path="big.bin")
    assert read.status == "succeeded"
    assert read.output["truncated"] is True
    assert read.output["bytes"] == READ_LIMIT_BYTES + 10
    assert len(read.output["content"]) == READ_LIMIT_BYTES


def test_reading_a_missing_file_fails_without_refusing(toolbox: Toolbox) -> None:
    result = run(toolbox, "read_file", path="nope.txt")
    assert result.status == "failed"
    assert result.output["error"] == "os_error"


@pytest.mark.parametrize(
    "path",
    ["../x", "a/../../x", "/etc/passwd", "", ".", "a/..", "C:\\Windows\\win.ini"],
)
def test_paths_outside_the_workspace_are_refused(toolbox: Toolbox, path: str) -> None:
    assert refusal(toolbox, "read_file", path=path) == "bad_args"
    assert refusal(toolbox, "write_file", path=path, content="x") == "bad_args"


def test_a_symlink_out_of_the_workspace_is_refused(
    tmp_path: Path, workspace: Path, toolbox: Toolbox
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (workspace / "file-link").symlink_to(outside / "secret.txt")
    (workspace / "dir-link").symlink_to(outside)

    assert refusal(toolbox, "read_file", path="file-link") == "bad_args"
    assert refusal(toolbox, "read_file", path="dir-link/secret.txt") == "bad_args"
    assert refusal(toolbox, "write_file", path="dir-link/new.txt", content="x") == "bad_args"
    assert refusal(toolbox, "write_file", path="file-link", content="x") == "bad_args"
    assert (outside / "secret.txt").read_text() == "secret"
    assert not (outside / "new.txt").exists()


def test_a_symlink_inside_the_workspace_is_followed(workspace: Path, toolbox: Toolbox) -> None:
    (workspace / "real.txt").write_text("inside")
    (workspace / "alias.txt").symlink_to("real.txt")
    assert run(toolbox, "read_file", path="alias.txt").output["content"] == "inside"


def test_a_fifo_is_not_read(workspace: Path, toolbox: Toolbox) -> None:
    os.mkfifo(workspace / "pipe")
    assert refusal(toolbox, "read_file", path="pipe") == "bad_args"


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("read_file", {}),
        ("read_file", {"path": "a", "extra": 1}),
        ("read_file", {"path": 3}),
        ("write_file", {"path": "a"}),
        ("write_file", {"path": "a", "content": 5}),
        ("write_file", {"path": "a", "content": "x", "append": "yes"}),
        ("http_get", {"url": "ftp://example.com/x"}),
        ("http_get", {"url": "/relative"}),
        ("http_get", {"url": "https://example.com", "timeout_seconds": 0}),
    ],
)
def test_bad_arguments_are_refused(toolbox: Toolbox, tool: str, args: dict[str, Any]) -> None:
    assert refusal(toolbox, tool, **args) == "bad_args"


def test_unknown_tools_and_malformed_payloads_are_refused(toolbox: Toolbox) -> None:
    for payload, reason in [
        ({"tool": "rm_rf", "args": {}}, "tool_not_allowed"),
        ({"tool": "read_file", "args": []}, "bad_args"),
        ({"tool": "read_file", "args": {"path": "a"}, "sudo": True}, "bad_args"),
        (["read_file"], "bad_args"),
    ]:
        with pytest.raises(ActionRefusedError) as refused:
            toolbox.run(payload)
        assert refused.value.reason == reason


# -- shell --------------------------------------------------------------------------


def test_shell_is_off_by_default(workspace: Path, toolbox: Toolbox) -> None:
    assert refusal(toolbox, "shell", command="touch ran") == "tool_not_allowed"
    assert not (workspace / "ran").exists()


def test_shell_runs_a_list_without_a_shell_in_the_workspace(
    workspace: Path, shell: Toolbox
) -> None:
    result = run(shell, "shell", command=[sys.executable, "-c", "import os; print(os.getcwd())"])
    assert result == ToolResult(
        "succeeded",
        {"exit_code": 0, "stdout": f"{workspace.resolve()}\n", "stderr": "", "truncated": False},
    )


def test_shell_runs_a_string_through_sh_in_a_cwd(workspace: Path, shell: Toolbox) -> None:
    (workspace / "sub").mkdir()
    result = run(shell, "shell", command="echo $0 > where; pwd", cwd="sub")
    assert result.status == "succeeded"
    assert result.output["stdout"] == f"{workspace.resolve() / 'sub'}\n"
    assert (workspace / "sub" / "where").read_text().strip().endswith("sh")


def test_a_non_zero_exit_is_failed(shell: Toolbox) -> None:
    result = run(shell, "shell", command="echo oops >&2; exit 3")
    assert result.status == "failed"
    assert result.output["exit_code"] == 3
    assert result.output["stderr"] == "oops\n"


def test_the_runner_token_is_not_passed_to_commands(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTPLANE_RUNNER_TOKEN", "do-not-leak")
    monkeypatch.setenv("SOME_OTHER_VAR", "kept")
    result = run(Toolbox(workspace, allow_shell=True), "shell", command="env")
    assert "do-not-leak" not in result.output["stdout"]
    assert "SOME_OTHER_VAR=kept" in result.output["stdout"]


def test_a_timeout_is_reported_and_the_whole_process_group_killed(shell: Toolbox) -> None:
    # The background sleep is a grandchild: killing only /bin/sh would leave it running.
    started = time.monotonic()
    result = run(shell, "shell", command="sleep 30 & echo $!; wait", timeout_seconds=0.5)
    assert time.monotonic() - started < 10
    assert result.status == "failed"
    assert result.output["error"] == "timeout"
    assert result.output["timeout_seconds"] == 0.5
    grandchild = int(result.output["stdout"])
    assert not _alive(grandchild)


def test_a_lease_caps_the_timeout(shell: Toolbox) -> None:
    result = shell.run(
        {"tool": "shell", "args": {"command": ["sleep", "30"], "timeout_seconds": 600}},
        time_limit=0.3,
    )
    assert result.output["error"] == "timeout"
    assert result.output["timeout_seconds"] == 0.3
    assert "lease" in result.output["detail"]


def test_large_output_is_truncated(shell: Toolbox) -> None:
    code = "import sys; sys.stdout.write('x' * 300000); sys.stderr.write('e' * 10)"
    result = run(shell, "shell", command=[sys.executable, "-c", code])
    assert result.status == "succeeded"
    assert result.output["truncated"] is True
    assert len(result.output["stdout"]) == OUTPUT_LIMIT_BYTES
    assert result.output["stderr"] == "e" * 10


@pytest.mark.parametrize(
    "args",
    [
        {"command": ""},
        {"command": []},
        {"command": ["ls", 3]},
        {"command": "ls", "timeout_seconds": 601},
        {"command": "ls", "timeout_seconds": True},
        {"command": "ls", "cwd": "../"},
        {"command": "ls", "cwd": "missing-dir"},
        {"command": "ls", "env": {"X": "1"}},
    ],
)
def test_bad_shell_arguments_are_refused(shell: Toolbox, args: dict[str, Any]) -> None:
    assert refusal(shell, "shell", **args) == "bad_args"


def test_a_missing_program_fails(shell: Toolbox) -> None:
    result = run(shell, "shell", command=["no-such-program-agentplane"])
    assert result.status == "failed"
    assert result.output["error"] == "os_error"


def _alive(pid: int) -> bool:
    # Reparented to a PID 1 that may not reap: a zombie counts as gone. The kill is
    # asynchronous, so poll briefly.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        time.sleep(0.05)
    return True


# -- http_get (no sockets here: a MockTransport; the real thing is an integration test) --


def test_http_get_keeps_a_few_headers_and_truncates_the_body(workspace: Path) -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        assert request.url == "https://example.test/data?q=1"
        return httpx.Response(
            200,
            headers={"content-type": "text/plain", "x-secret-ish": "nope"},
            content=b"y" * (OUTPUT_LIMIT_BYTES + 5),
        )

    box = Toolbox(workspace, http_transport=httpx.MockTransport(serve))
    result = run(box, "http_get", url="https://example.test/data?q=1")
    assert result.status == "succeeded"
    assert result.output["status_code"] == 200
    assert result.output["headers"]["content-type"] == "text/plain"
    assert "x-secret-ish" not in result.output["headers"]
    assert result.output["truncated"] is True
    assert len(result.output["body"]) == OUTPUT_LIMIT_BYTES


def test_http_get_does_not_follow_redirects_and_fails_on_errors(workspace: Path) -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/moved":
            return httpx.Response(302, headers={"location": "https://elsewhere.test/"})
        if request.url.path == "/slow":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(404, text="not here")

    box = Toolbox(workspace, http_transport=httpx.MockTransport(serve))
    moved = run(box, "http_get", url="https://example.test/moved")
    assert moved.status == "succeeded"
    assert moved.output["headers"]["location"] == "https://elsewhere.test/"
    missing = run(box, "http_get", url="https://example.test/missing")
    assert (missing.status, missing.output["body"]) == ("failed", "not here")
    slow = run(box, "http_get", url="https://example.test/slow", timeout_seconds=2)
    assert slow == ToolResult("failed", {"error": "timeout", "timeout_seconds": 2.0})
