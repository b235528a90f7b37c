"""The runner's tools: workspace confinement, the shell switch, limits, timeouts."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentplane.runner.models import ActionRefusedError, ToolResult
from agentplane.runner.tools import OUTPUT_LIMIT_BYTES, READ_LIMIT_BYTES, Toolbox
from agentplane.tools.models import UNDO_CONTENT_LIMIT_BYTES


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
    assert written == ToolResult(
        "succeeded",
        {
            "path": "notes/day 1.txt",
            "bytes": 7,
            "previous": {"existed": False, "sha256": None, "bytes": 0, "content": None},
        },
    )
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_write_reports_the_text_it_replaced(workspace: Path, toolbox: Toolbox) -> None:
    # Given a text file
    (workspace / "a.txt").write_text("v1 ✓\n", encoding="utf-8")
    # When it is overwritten
    written = run(toolbox, "write_file", path="a.txt", content="v2")
    # Then the output says what was there, whole: an undo writes it back
    assert written.output == {
        "path": "a.txt",
        "bytes": 2,
        "previous": {
            "existed": True,
            "sha256": _sha256("v1 ✓\n".encode()),
            "bytes": len("v1 ✓\n".encode()),
            "content": "v1 ✓\n",
        },
    }
    assert (workspace / "a.txt").read_text() == "v2"


def test_a_new_file_had_nothing_before_it(workspace: Path, toolbox: Toolbox) -> None:
    written = run(toolbox, "write_file", path="new/b.txt", content="x")
    assert written.output["previous"] == {
        "existed": False,
        "sha256": None,
        "bytes": 0,
        "content": None,
    }
    # An empty file did exist: restoring it is writing nothing back
    (workspace / "empty.txt").write_bytes(b"")
    emptied = run(toolbox, "write_file", path="empty.txt", content="y")
    assert emptied.output["previous"] == {
        "existed": True,
        "sha256": _sha256(b""),
        "bytes": 0,
        "content": "",
    }


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe\x00binary", b"text with a NUL \x00 inside", b"caf\xe9 (latin-1)"],
    ids=["binary", "nul", "not-utf8"],
)
def test_what_is_not_utf8_text_is_hashed_not_kept(
    workspace: Path, toolbox: Toolbox, data: bytes
) -> None:
    (workspace / "blob").write_bytes(data)
    written = run(toolbox, "write_file", path="blob", content="replaced")
    assert written.output["previous"] == {
        "existed": True,
        "sha256": _sha256(data),
        "bytes": len(data),
        "content": None,
    }


def test_text_over_the_limit_is_hashed_not_kept(workspace: Path, toolbox: Toolbox) -> None:
    at_limit = b"a" * UNDO_CONTENT_LIMIT_BYTES
    (workspace / "at.txt").write_bytes(at_limit)
    (workspace / "over.txt").write_bytes(at_limit + b"b")
    kept = run(toolbox, "write_file", path="at.txt", content="")
    assert kept.output["previous"]["content"] == at_limit.decode()
    over = run(toolbox, "write_file", path="over.txt", content="")
    assert over.output["previous"] == {
        "existed": True,
        "sha256": _sha256(at_limit + b"b"),
        "bytes": UNDO_CONTENT_LIMIT_BYTES + 1,
        "content": None,
    }
    assert (workspace / "over.txt").read_bytes() == b""


def test_an_append_reports_the_whole_file_before_it(workspace: Path, toolbox: Toolbox) -> None:
    (workspace / "log.txt").write_text("line 1\n")
    appended = run(toolbox, "write_file", path="log.txt", content="line 2\n", append=True)
    # The previous content is what restores the file, not the part appended to
    assert appended.output == {
        "path": "log.txt",
        "bytes": 7,
        "previous": {
            "existed": True,
            "sha256": _sha256(b"line 1\n"),
            "bytes": 7,
            "content": "line 1\n",
        },
    }
    assert (workspace / "log.txt").read_text() == "line 1\nline 2\n"


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


# -- http_get (no sockets here: a MockTransport and a fake resolver; a real server on
# 127.0.0.1 is tests/integration/test_runner_http_get.py) -----------------------------

PUBLIC = "93.184.215.14"


def resolver(names: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, _port: int) -> list[str]:
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return names[host]

    return resolve


class Web:
    """A MockTransport that records what reached it."""

    def __init__(self, serve: Callable[[httpx.Request], httpx.Response]) -> None:
        self.requests: list[httpx.Request] = []
        self._serve = serve

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._serve(request)

    def box(self, workspace: Path, names: dict[str, list[str]], **options: Any) -> Toolbox:
        return Toolbox(
            workspace,
            http_transport=httpx.MockTransport(self.handle),
            resolver=resolver(names),
            **options,
        )


def _ok(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="ok")


def test_http_get_keeps_a_few_headers_and_truncates_the_body(workspace: Path) -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-type": "text/plain", "x-secret-ish": "nope"},
            content=b"y" * (OUTPUT_LIMIT_BYTES + 5),
        )

    box = Web(serve).box(workspace, {"example.test": [PUBLIC]})
    result = run(box, "http_get", url="https://example.test/data?q=1")
    assert result.status == "succeeded"
    assert result.output["status_code"] == 200
    assert result.output["url"] == "https://example.test/data?q=1"
    assert result.output["headers"]["content-type"] == "text/plain"
    assert "x-secret-ish" not in result.output["headers"]
    assert result.output["truncated"] is True
    assert len(result.output["body"]) == OUTPUT_LIMIT_BYTES


def test_http_get_connects_to_the_address_it_checked(workspace: Path) -> None:
    # The name is resolved once and the request goes to that address, carrying the name
    # in Host and (https) in the TLS SNI: a second lookup cannot swap in another address.
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(f"{host}:{port}")
        return [PUBLIC]

    web = Web(_ok)
    box = Toolbox(workspace, http_transport=httpx.MockTransport(web.handle), resolver=resolve)
    assert run(box, "http_get", url="https://Example.test:8443/data?q=1").status == "succeeded"
    assert run(box, "http_get", url="http://example.test/").status == "succeeded"
    assert lookups == ["example.test:8443", "example.test:80"]
    secure, plain = web.requests
    assert secure.url == f"https://{PUBLIC}:8443/data?q=1"
    assert secure.headers["host"] == "example.test:8443"
    assert secure.extensions["sni_hostname"] == "example.test"
    assert plain.url == f"http://{PUBLIC}/"
    assert plain.headers["host"] == "example.test"
    assert "sni_hostname" not in plain.extensions


def test_http_get_tries_the_next_checked_address_when_one_cannot_be_reached(
    workspace: Path,
) -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.host == PUBLIC:
            raise httpx.ConnectError("unreachable", request=request)
        return httpx.Response(200, text="from the second")

    web = Web(serve)
    box = web.box(workspace, {"example.test": [PUBLIC, "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]})
    result = run(box, "http_get", url="http://example.test/")
    assert (result.status, result.output["body"]) == ("succeeded", "from the second")
    assert [r.url.host for r in web.requests] == [PUBLIC, "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    assert web.requests[1].headers["host"] == "example.test"


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.8.9.10",
        "[::1]",
        "169.254.169.254",  # cloud metadata
        "[fe80::1]",
        "10.0.0.1",
        "172.16.5.4",
        "172.31.255.255",
        "192.168.1.1",
        "[fc00::1]",
        "[fd12:3456::1]",
        "0.0.0.0",  # noqa: S104 - a URL to refuse, not a bind
        "[::]",
        "224.0.0.1",
        "[ff02::1]",
        "240.0.0.1",
        "255.255.255.255",
        "100.64.0.1",  # shared address space (carrier NAT)
        "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    ],
)
def test_http_get_refuses_addresses_that_are_not_public(workspace: Path, host: str) -> None:
    web = Web(_ok)
    result = run(web.box(workspace, {}), "http_get", url=f"http://{host}/latest/meta-data")
    assert result.status == "failed"
    assert result.output["error"] == "address_not_allowed"
    assert "--allow-private-network" in result.output["detail"]
    assert web.requests == []


def test_http_get_refuses_a_name_if_any_of_its_addresses_is_private(workspace: Path) -> None:
    web = Web(_ok)
    box = web.box(
        workspace,
        {
            "intranet.test": ["10.1.2.3"],
            "split.test": [PUBLIC, "192.168.0.7"],
            "localhost": ["::1"],
        },
    )
    for url in ("http://intranet.test/", "https://split.test/", "http://localhost:8000/"):
        result = run(box, "http_get", url=url)
        assert result.output["error"] == "address_not_allowed", url
        assert "resolves to" in result.output["detail"]
    assert "192.168.0.7" in run(box, "http_get", url="https://split.test/").output["detail"]
    assert web.requests == []


def test_allow_private_network_opens_them(workspace: Path) -> None:
    web = Web(_ok)
    box = web.box(workspace, {"intranet.test": ["10.1.2.3"]}, allow_private_network=True)
    assert run(box, "http_get", url="http://127.0.0.1:8080/").status == "succeeded"
    assert run(box, "http_get", url="http://intranet.test/").status == "succeeded"
    assert [str(r.url) for r in web.requests] == ["http://127.0.0.1:8080/", "http://10.1.2.3/"]


def test_http_get_checks_each_redirect_before_following_it(workspace: Path) -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        targets = {
            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
            "/to-intranet": "https://intranet.test/admin",
            "/to-public": "/final",
        }
        if request.url.path in targets:
            return httpx.Response(302, headers={"location": targets[request.url.path]})
        return httpx.Response(200, text=f"at {request.headers['host']}{request.url.path}")

    web = Web(serve)
    box = web.box(workspace, {"example.test": [PUBLIC], "intranet.test": ["10.0.0.5"]})
    for path, refused in [
        ("/to-metadata", "http://169.254.169.254/latest/meta-data/"),
        ("/to-intranet", "https://intranet.test/admin"),
    ]:
        result = run(box, "http_get", url=f"https://example.test{path}")
        assert result.status == "failed"
        assert result.output["error"] == "address_not_allowed"
        assert result.output["url"] == refused
    assert [r.url.path for r in web.requests] == ["/to-metadata", "/to-intranet"]

    followed = run(box, "http_get", url="https://example.test/to-public")
    assert followed.status == "succeeded"
    assert followed.output["body"] == "at example.test/final"
    assert followed.output["url"] == "https://example.test/final"


def test_http_get_follows_at_most_five_redirects(workspace: Path) -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        hop = int(request.url.path.strip("/") or 0)
        return httpx.Response(307, headers={"location": f"/{hop + 1}"})

    web = Web(serve)
    result = run(
        web.box(workspace, {"example.test": [PUBLIC]}), "http_get", url="http://example.test/"
    )
    assert result.status == "failed"
    assert result.output["error"] == "too_many_redirects"
    assert len(web.requests) == 6  # the URL and five redirects


def test_http_get_fails_on_a_redirect_elsewhere_than_http(workspace: Path) -> None:
    web = Web(lambda _r: httpx.Response(301, headers={"location": "file:///etc/passwd"}))
    result = run(
        web.box(workspace, {"example.test": [PUBLIC]}), "http_get", url="http://example.test/"
    )
    assert (result.status, result.output["error"]) == ("failed", "bad_redirect")


def test_http_get_reports_a_name_that_does_not_resolve(workspace: Path) -> None:
    web = Web(_ok)
    result = run(web.box(workspace, {}), "http_get", url="https://nowhere.test/")
    assert (result.status, result.output["error"]) == ("failed", "dns_error")
    assert web.requests == []


def test_http_get_fails_on_errors_and_timeouts(workspace: Path) -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slow":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(404, text="not here")

    box = Web(serve).box(workspace, {"example.test": [PUBLIC]})
    missing = run(box, "http_get", url="https://example.test/missing")
    assert (missing.status, missing.output["body"]) == ("failed", "not here")
    slow = run(box, "http_get", url="https://example.test/slow", timeout_seconds=2)
    assert slow == ToolResult("failed", {"error": "timeout", "timeout_seconds": 2.0})
