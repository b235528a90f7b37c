"""The runner's tools: an explicit allowlist, confined to one workspace directory.

The tools and their argument schemas are the catalog's (`agentplane.tools.catalog`), the
same the server checked the proposal against. A tool first checks its arguments (the
schema, then paths leaving the workspace: `bad_args`; a tool that is not in the catalog
or not switched on: `tool_not_allowed`) and only then does anything. A human approved these exact
arguments, so nothing is guessed, clamped or ignored.

- `shell` (off unless allowed): `{"command": str | [str, ...], "timeout_seconds"?,
  "cwd"?}`. A list runs without a shell, a string through `/bin/sh -c`, in the
  workspace, in its own process group (POSIX) that is killed on timeout and when the
  command ends, so nothing it started outlives the action. Non-zero exit: failed.
- `read_file` `{"path"}`: at most 128 KiB, decoded as UTF-8 (invalid bytes replaced).
- `write_file` `{"path", "content", "append"?}`: parent directories created. The output
  says what was replaced, for an undo: `previous: {existed, sha256, bytes, content}`, the
  content only when it was UTF-8 text of at most 128 KiB (UNDO_CONTENT_LIMIT_BYTES).
- `http_get` `{"url", "timeout_seconds"?}`: only public addresses unless the runner was
  started with --allow-private-network (loopback, link-local and cloud metadata, private,
  unspecified, multicast and reserved are refused: `address_not_allowed`), checked for
  every address the name resolves to, and again for each redirect (at most 5 followed);
  the connection goes to the address that was checked. A status of 400 or more is failed.

stdout, stderr and bodies keep their first 64 KiB with `"truncated": true`.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import math
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any

import httpx
from pydantic import ValidationError

from agentplane.runner.models import ActionRefusedError, ToolResult
from agentplane.tools.catalog import CATALOG
from agentplane.tools.models import (
    MAX_HTTP_TIMEOUT_S,
    MAX_SHELL_TIMEOUT_S,
    UNDO_CONTENT_LIMIT_BYTES,
)

OUTPUT_LIMIT_BYTES = 64 * 1024
# A result travels back in one request under the server's 1 MiB body limit; JSON can
# escape a byte as six characters (\u0000), so 128 KiB of file always fits.
READ_LIMIT_BYTES = 128 * 1024
SHELL_DEFAULT_TIMEOUT_S = 30.0
SHELL_MAX_TIMEOUT_S = MAX_SHELL_TIMEOUT_S
HTTP_DEFAULT_TIMEOUT_S = 10.0
HTTP_MAX_TIMEOUT_S = MAX_HTTP_TIMEOUT_S
# The runner's own credential is not handed to the commands it runs.
TOKEN_ENV_VAR = "AGENTPLANE_RUNNER_TOKEN"  # noqa: S105 - a name, not a secret
HTTP_HEADERS_KEPT = (
    "content-type",
    "content-length",
    "content-encoding",
    "location",
    "last-modified",
    "etag",
)
# How long to wait for a killed command's pipes to close before giving up on them.
_PIPE_GRACE_S = 2.0
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> every address the host resolves to, as text.
Resolver = Callable[[str, int], Sequence[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to for TCP, in the system resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(address: IPAddress) -> bool:
    """Whether http_get may reach `address` without --allow-private-network: not loopback,
    link-local (169.254.0.0/16 holds cloud metadata; fe80::/10), private (10/8,
    172.16/12, 192.168/16, fc00::/7), unspecified, multicast or reserved."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 and 2002:7f00:1:: reach the IPv4 address inside them.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not (
        address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
    )


class _AddressRefusedError(Exception):
    """A URL whose host is, or resolves to, an address this runner may not reach."""


def _bad_args(detail: str) -> ActionRefusedError:
    return ActionRefusedError("bad_args", detail)


def _check_keys(
    args: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> None:
    missing = [k for k in required if k not in args]
    unknown = sorted(set(args) - set(required) - set(optional))
    if missing:
        raise _bad_args(f"missing argument(s): {', '.join(missing)}")
    if unknown:
        raise _bad_args(f"unknown argument(s): {', '.join(unknown)}")


def _check_schema(tool: str, args: Mapping[str, Any]) -> None:
    # The catalog's schema first (what the server checked the proposal against), then
    # each tool's own checks (the workspace, the network), which the schema cannot see.
    try:
        CATALOG[tool].args.model_validate(args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_arg_of(err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise _bad_args(f"arguments do not fit the {tool} schema: {problems}") from exc


def _arg_of(loc: tuple[int | str, ...]) -> str:
    # The argument a validation error is about (its first location), or `args`.
    return str(loc[0]) if loc else "args"


def _seconds(args: Mapping[str, Any], key: str, default: float, maximum: float) -> float:
    value = args.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= maximum
    ):
        raise _bad_args(f"{key} must be a number of seconds in (0, {maximum:g}]")
    return float(value)


def _text(data: bytes | bytearray, encoding: str = "utf-8") -> str:
    return bytes(data).decode(encoding, errors="replace")


def resolve_in_workspace(root: Path, relative: Any, *, allow_root: bool = False) -> Path:
    """The real path of `relative` inside the workspace `root` (itself a resolved path).

    Refused (bad_args): non-strings, absolute paths, `..` components, and anything whose
    real path (symlinks followed) is not inside the workspace.
    """
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise _bad_args("a path must be a non-empty string")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or PureWindowsPath(relative).anchor:
        raise _bad_args(f"{relative!r} is absolute; paths are relative to the workspace")
    if ".." in pure.parts:
        raise _bad_args(f"{relative!r} contains '..'")
    try:
        resolved = (root / pure).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise _bad_args(f"{relative!r} cannot be resolved: {exc}") from exc
    if not resolved.is_relative_to(root) or (resolved == root and not allow_root):
        raise _bad_args(f"{relative!r} resolves outside the workspace")
    return resolved


def _open_for_write(path: Path, append: bool) -> tuple[int, bool]:
    """A read-write descriptor of `path` (created if missing) and whether it existed.

    O_NONBLOCK: opening a FIFO must not hang the runner; O_NOFOLLOW: the path was
    resolved, a symlink appearing since is refused, not followed."""
    flags = (
        os.O_RDWR | os.O_NONBLOCK | (os.O_APPEND if append else 0) | getattr(os, "O_NOFOLLOW", 0)
    )
    try:
        return os.open(path, flags), True
    except FileNotFoundError:
        # O_EXCL: a file created meanwhile is an error, not one replaced unreported.
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666), False


def _previous_content(f: IO[bytes], existed: bool) -> dict[str, Any]:
    """What a write replaces, for POST /actions/{id}/undo: its SHA-256 and size, and its
    text when it is UTF-8 without NUL (jsonb cannot hold one) of at most
    UNDO_CONTENT_LIMIT_BYTES; otherwise `content` is null."""
    if not existed:
        return {"existed": False, "sha256": None, "bytes": 0, "content": None}
    digest = hashlib.sha256()
    kept = bytearray()
    size = 0
    while chunk := f.read(65536):
        digest.update(chunk)
        size += len(chunk)
        if len(kept) <= UNDO_CONTENT_LIMIT_BYTES:
            kept += chunk[: UNDO_CONTENT_LIMIT_BYTES + 1 - len(kept)]
    content: str | None = None
    if size <= UNDO_CONTENT_LIMIT_BYTES and b"\x00" not in kept:
        with contextlib.suppress(UnicodeDecodeError):
            content = bytes(kept).decode("utf-8")
    return {"existed": True, "sha256": digest.hexdigest(), "bytes": size, "content": content}


class _BoundedReader(threading.Thread):
    """Drains a pipe, keeping its first `limit` bytes, so a chatty command cannot fill
    memory or block on a full pipe."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self._limit = limit
        self.data = bytearray()
        self.total = 0

    def run(self) -> None:
        with self._stream:
            while chunk := self._stream.read(65536):
                self.total += len(chunk)
                room = self._limit - len(self.data)
                if room > 0:
                    self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > self._limit


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # The command runs as its own process group leader (start_new_session), so this
    # reaches whatever it started, too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def child_environment() -> dict[str, str]:
    """The environment commands run with: the runner's, without its token."""
    return {k: v for k, v in os.environ.items() if k != TOKEN_ENV_VAR}


class Toolbox:
    """The allowlisted tools, bound to a workspace directory (created if missing).

    `resolver` (host, port -> addresses) and `address_allowed` (what counts as public)
    let a test stand in for DNS and the internet; `allow_private_network` skips the check.
    """

    def __init__(
        self,
        workspace: Path,
        *,
        allow_shell: bool = False,
        allow_private_network: bool = False,
        http_transport: httpx.BaseTransport | None = None,
        resolver: Resolver = resolve_host,
        address_allowed: Callable[[IPAddress], bool] = is_public_address,
        child_env: Mapping[str, str] | None = None,
    ) -> None:
        workspace.mkdir(parents=True, exist_ok=True)
        self.workspace = workspace.resolve()
        self.allow_shell = allow_shell
        self.allow_private_network = allow_private_network
        self._http_transport = http_transport
        self._resolver = resolver
        self._address_allowed = address_allowed
        self._child_env = child_env
        handlers: dict[str, Callable[[Mapping[str, Any], float | None], ToolResult]] = {
            "shell": self._shell,
            "read_file": self._read_file,
            "write_file": self._write_file,
            "http_get": self._http_get,
        }
        # The catalog says which tools exist; this runner has a handler for each.
        self._tools = {name: handlers[name] for name in CATALOG}

    def run(self, payload: Any, *, time_limit: float | None = None) -> ToolResult:
        """Run an approved payload `{tool, args}`; raise ActionRefusedError before doing
        anything when the tool or its arguments are not allowed.

        `time_limit` (seconds) caps a tool's own timeout, e.g. to the claim's lease.
        """
        if not isinstance(payload, Mapping):
            raise _bad_args("the payload is not a JSON object")
        _check_keys(payload, ("tool",), ("args",))
        tool, args = payload["tool"], payload.get("args", {})
        if not isinstance(tool, str) or tool not in self._tools:
            raise ActionRefusedError(
                "tool_not_allowed",
                f"tool {tool!r} is not one of {', '.join(sorted(self._tools))}",
            )
        if tool == "shell" and not self.allow_shell:
            raise ActionRefusedError(
                "tool_not_allowed", "shell is off on this runner (start it with --allow-shell)"
            )
        if not isinstance(args, Mapping):
            raise _bad_args("args is not a JSON object")
        _check_schema(tool, args)
        try:
            return self._tools[tool](args, time_limit)
        except OSError as exc:
            return ToolResult("failed", {"error": "os_error", "detail": str(exc)})

    # -- files ---------------------------------------------------------------------

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.workspace).as_posix()

    def _read_file(self, args: Mapping[str, Any], _time_limit: float | None) -> ToolResult:
        _check_keys(args, ("path",))
        path = resolve_in_workspace(self.workspace, args["path"])
        # O_NONBLOCK: opening a FIFO must not hang the runner; O_NOFOLLOW: the path was
        # resolved above, a symlink appearing since is refused, not followed.
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _bad_args(f"{args['path']!r} is not a regular file")
            data = f.read(READ_LIMIT_BYTES + 1)
        truncated = len(data) > READ_LIMIT_BYTES
        return ToolResult(
            "succeeded",
            {
                "content": _text(data[:READ_LIMIT_BYTES]),
                "bytes": max(info.st_size, len(data)),
                "truncated": truncated,
            },
        )

    def _write_file(self, args: Mapping[str, Any], _time_limit: float | None) -> ToolResult:
        _check_keys(args, ("path", "content"), ("append",))
        content, append = args["content"], args.get("append", False)
        if not isinstance(content, str):
            raise _bad_args("content must be a string")
        if not isinstance(append, bool):
            raise _bad_args("append must be true or false")
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _bad_args("content is not valid Unicode text") from exc
        path = resolve_in_workspace(self.workspace, args["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        # Re-check after creating directories: nothing may have moved the target out.
        if resolve_in_workspace(self.workspace, args["path"]) != path:
            raise _bad_args(f"{args['path']!r} changed while being written")
        # One descriptor reads what is there and then writes, so what `previous`
        # describes is the file that was replaced, not one a symlink swapped in.
        fd, existed = _open_for_write(path, append)
        with os.fdopen(fd, "r+b") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise _bad_args(f"{args['path']!r} is not a regular file")
            previous = _previous_content(f, existed)
            if not append:
                f.seek(0)
                f.truncate()
            f.write(data)
        return ToolResult(
            "succeeded", {"path": self._relative(path), "bytes": len(data), "previous": previous}
        )

    # -- shell ---------------------------------------------------------------------

    def _shell(self, args: Mapping[str, Any], time_limit: float | None) -> ToolResult:
        _check_keys(args, ("command",), ("timeout_seconds", "cwd"))
        command = args["command"]
        if isinstance(command, str) and command.strip():
            argv = ["/bin/sh", "-c", command]
        elif (
            isinstance(command, list)
            and command
            and all(isinstance(part, str) and "\x00" not in part for part in command)
        ):
            argv = list(command)
        else:
            raise _bad_args("command must be a non-empty string or list of strings")
        timeout = _seconds(args, "timeout_seconds", SHELL_DEFAULT_TIMEOUT_S, SHELL_MAX_TIMEOUT_S)
        cwd = (
            resolve_in_workspace(self.workspace, args["cwd"], allow_root=True)
            if "cwd" in args
            else self.workspace
        )
        if not cwd.is_dir():
            raise _bad_args(f"cwd {args['cwd']!r} is not a directory of the workspace")
        if time_limit is not None and time_limit < timeout:
            return self._run_process(argv, cwd, time_limit, capped_by_lease=True)
        return self._run_process(argv, cwd, timeout, capped_by_lease=False)

    def _run_process(
        self, argv: list[str], cwd: Path, timeout: float, *, capped_by_lease: bool
    ) -> ToolResult:
        env = dict(self._child_env) if self._child_env is not None else child_environment()
        # Popen rather than subprocess.run: run() kills only the direct child on timeout
        # and buffers all output; here the whole process group goes and output is bounded.
        proc = subprocess.Popen(  # noqa: S603 - the approved, verified command is the point
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        readers = [
            _BoundedReader(proc.stdout, OUTPUT_LIMIT_BYTES),
            _BoundedReader(proc.stderr, OUTPUT_LIMIT_BYTES),
        ]
        for reader in readers:
            reader.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # Also on KeyboardInterrupt (a forced stop): leave nothing running.
            _kill_group(proc)
            proc.wait()
            for reader in readers:
                reader.join(_PIPE_GRACE_S)
        out, err = readers
        output: dict[str, Any] = {
            "exit_code": proc.returncode,
            "stdout": _text(out.data),
            "stderr": _text(err.data),
            "truncated": out.truncated or err.truncated,
        }
        if timed_out:
            detail = (
                "stopped at the end of the claim's lease"
                if capped_by_lease
                else f"the command ran longer than {timeout:g} s"
            )
            return ToolResult(
                "failed",
                {"error": "timeout", "timeout_seconds": timeout, "detail": detail, **output},
            )
        return ToolResult("succeeded" if proc.returncode == 0 else "failed", output)

    # -- http ----------------------------------------------------------------------

    def _http_get(self, args: Mapping[str, Any], time_limit: float | None) -> ToolResult:
        _check_keys(args, ("url",), ("timeout_seconds",))
        raw_url = args["url"]
        if not isinstance(raw_url, str):
            raise _bad_args("url must be a string")
        try:
            url = httpx.URL(raw_url)
        except httpx.InvalidURL as exc:
            raise _bad_args(f"url is not a URL: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise _bad_args("url must be an absolute http(s) URL")
        timeout = _seconds(args, "timeout_seconds", HTTP_DEFAULT_TIMEOUT_S, HTTP_MAX_TIMEOUT_S)
        if time_limit is not None:
            timeout = min(timeout, time_limit)
        deadline = time.monotonic() + timeout
        try:
            with httpx.Client(
                timeout=timeout, follow_redirects=False, transport=self._http_transport
            ) as client:
                # Redirects are followed here, not by httpx, so each one is checked first.
                for _hop in range(MAX_REDIRECTS + 1):
                    response = _send_pinned(client, url, self._checked_addresses(url))
                    try:
                        location = response.headers.get("location")
                        if response.status_code in REDIRECT_STATUSES and location:
                            url = _redirect_target(url, location)
                            continue
                        return _http_result(url, response, deadline)
                    finally:
                        response.close()
        except _AddressRefusedError as exc:
            return ToolResult(
                "failed", {"error": "address_not_allowed", "detail": str(exc), "url": str(url)}
            )
        except _BadRedirectError as exc:
            return ToolResult(
                "failed", {"error": "bad_redirect", "detail": str(exc), "url": str(url)}
            )
        except socket.gaierror as exc:
            return ToolResult(
                "failed",
                {"error": "dns_error", "detail": f"{url.host}: {exc.strerror}", "url": str(url)},
            )
        except httpx.TimeoutException:
            return ToolResult("failed", {"error": "timeout", "timeout_seconds": timeout})
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return ToolResult(
                "failed", {"error": "http_error", "detail": f"{type(exc).__name__}: {exc}"}
            )
        return ToolResult(
            "failed",
            {
                "error": "too_many_redirects",
                "detail": f"more than {MAX_REDIRECTS} redirects",
                "url": str(url),
            },
        )

    def _checked_addresses(self, url: httpx.URL) -> list[IPAddress]:
        """The addresses to connect to for `url`, in order: every address its host resolves
        to must be allowed (one bad answer refuses the URL: which one a connection would
        use is the resolver's choice)."""
        host = url.raw_host.decode("ascii")
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
            what = f"{host} is"
        except ValueError:
            port = url.port or (443 if url.scheme == "https" else 80)
            addresses = [ipaddress.ip_address(a) for a in self._resolver(host, port)]
            what = f"{host} resolves to"
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "the name has no address")
        refused = [a for a in addresses if not self._address_allowed(a)]
        if refused and not self.allow_private_network:
            raise _AddressRefusedError(
                f"{what} {', '.join(str(a) for a in refused)}, not a public address"
                " (loopback, link-local, private, unspecified, multicast or reserved);"
                " the runner reaches those only with --allow-private-network"
            )
        return addresses


class _BadRedirectError(Exception):
    """A redirect to something that is not an absolute http(s) URL."""


def _redirect_target(url: httpx.URL, location: str) -> httpx.URL:
    try:
        target = url.join(location)
    except httpx.InvalidURL as exc:
        raise _BadRedirectError(f"the Location {location!r} is not a URL: {exc}") from exc
    if target.scheme not in ("http", "https") or not target.host:
        raise _BadRedirectError(f"the Location {location!r} is not an http(s) URL")
    return target


def _send_pinned(
    client: httpx.Client, url: httpx.URL, addresses: Sequence[IPAddress]
) -> httpx.Response:
    # Against DNS rebinding, the name is resolved once (`_checked_addresses`) and the
    # request goes to a checked address: the URL carries the IP, so httpx does not
    # resolve again, while the Host header, and for https the TLS SNI and certificate
    # check (httpcore's `sni_hostname`), carry the name. Like socket.create_connection,
    # the next address is tried when one cannot be connected to. The response is open
    # (streamed): the caller closes it.
    host = url.raw_host.decode("ascii")
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    failure: httpx.ConnectError | None = None
    for address in addresses:
        request = client.build_request(
            "GET",
            url.copy_with(host=str(address)),
            headers={"Host": url.netloc.decode("ascii")},
            extensions=extensions,
        )
        try:
            return client.send(request, stream=True)
        except httpx.ConnectError as exc:
            failure = exc
    raise failure or httpx.ConnectError(f"{host} has no address to connect to")


def _http_result(url: httpx.URL, response: httpx.Response, deadline: float) -> ToolResult:
    body = bytearray()
    truncated = False
    for chunk in response.iter_bytes():
        room = OUTPUT_LIMIT_BYTES - len(body)
        body += chunk[:room]
        if len(chunk) > room:
            truncated = True
            break
        # httpx's timeout is per read; this bounds a slow trickle too.
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the response took too long", request=response.request)
    headers = {k: response.headers[k] for k in HTTP_HEADERS_KEPT if k in response.headers}
    return ToolResult(
        "succeeded" if response.status_code < 400 else "failed",
        {
            "status_code": response.status_code,
            "url": str(url),
            "headers": headers,
            "body": _text(body, response.encoding or "utf-8"),
            "truncated": truncated,
        },
    )
