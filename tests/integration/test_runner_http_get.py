"""The runner's http_get tool against a real HTTP server on 127.0.0.1: refused unless
the private network is allowed, and each redirect checked before it is followed."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agentplane.runner.tools import OUTPUT_LIMIT_BYTES, Toolbox

BIG = b"z" * (OUTPUT_LIMIT_BYTES * 4)
# What reached the server: (path, Host header), in order.
_seen: list[tuple[str, str | None]] = []


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        _seen.append((self.path, self.headers["Host"]))
        if self.path == "/to-private":
            # The same server under another loopback address, which the test calls private.
            self._redirect(f"http://127.0.0.2:{self.server.server_address[1]}/hello")
        elif self.path == "/hello":
            self._send(200, b"hello from the server", "text/plain; charset=utf-8")
        elif self.path == "/big":
            self._send(200, BIG, "application/octet-stream")
        elif self.path == "/redirect":
            self._redirect("/hello")
        else:
            self._send(404, b"no such page", "text/plain")

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _direct(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment must not stand between the tool and 127.0.0.1.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,127.0.0.2")
    _seen.clear()


@pytest.fixture
def toolbox(tmp_path: Path) -> Toolbox:
    return Toolbox(tmp_path / "ws", allow_private_network=True)


def _only_127_0_0_1(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # Plays the public internet: 127.0.0.1 counts as public, any other address as it is.
    return address == ipaddress.IPv4Address("127.0.0.1")


def test_loopback_is_refused_by_default(base_url: str, tmp_path: Path) -> None:
    result = Toolbox(tmp_path / "ws").run(
        {"tool": "http_get", "args": {"url": f"{base_url}/hello"}}
    )
    assert result.status == "failed"
    assert result.output["error"] == "address_not_allowed"
    assert "--allow-private-network" in result.output["detail"]
    assert _seen == []


def test_a_name_resolving_to_loopback_is_refused(base_url: str, tmp_path: Path) -> None:
    port = base_url.rsplit(":", 1)[1]
    result = Toolbox(tmp_path / "ws").run(
        {"tool": "http_get", "args": {"url": f"http://localhost:{port}/hello"}}
    )
    assert result.output["error"] == "address_not_allowed"
    assert "localhost resolves to" in result.output["detail"]
    assert _seen == []


def test_a_redirect_from_an_allowed_address_to_a_private_one_is_refused(
    base_url: str, tmp_path: Path
) -> None:
    box = Toolbox(tmp_path / "ws", address_allowed=_only_127_0_0_1)
    result = box.run({"tool": "http_get", "args": {"url": f"{base_url}/to-private"}})
    assert result.status == "failed"
    assert result.output["error"] == "address_not_allowed"
    assert result.output["url"].startswith("http://127.0.0.2:")
    # The first request was made, the redirect was not followed.
    assert [path for path, _ in _seen] == ["/to-private"]


def test_the_request_goes_to_the_resolved_address_with_the_name_as_host(
    base_url: str, tmp_path: Path
) -> None:
    port = int(base_url.rsplit(":", 1)[1])
    box = Toolbox(
        tmp_path / "ws",
        address_allowed=_only_127_0_0_1,
        resolver=lambda host, _port: ["127.0.0.1"] if host == "public.test" else [],
    )
    result = box.run({"tool": "http_get", "args": {"url": f"http://public.test:{port}/hello"}})
    assert result.status == "succeeded", result.output
    assert result.output["body"] == "hello from the server"
    assert _seen == [("/hello", f"public.test:{port}")]


def test_http_get_fetches_a_page(base_url: str, toolbox: Toolbox) -> None:
    result = toolbox.run({"tool": "http_get", "args": {"url": f"{base_url}/hello"}})
    assert result.status == "succeeded"
    assert result.output == {
        "status_code": 200,
        "url": f"{base_url}/hello",
        "headers": {"content-type": "text/plain; charset=utf-8", "content-length": "21"},
        "body": "hello from the server",
        "truncated": False,
    }


def test_http_get_truncates_a_large_body(base_url: str, toolbox: Toolbox) -> None:
    result = toolbox.run({"tool": "http_get", "args": {"url": f"{base_url}/big"}})
    assert result.status == "succeeded"
    assert result.output["truncated"] is True
    assert len(result.output["body"]) == OUTPUT_LIMIT_BYTES


def test_http_get_reports_errors_and_follows_redirects(base_url: str, toolbox: Toolbox) -> None:
    missing = toolbox.run({"tool": "http_get", "args": {"url": f"{base_url}/missing"}})
    assert (missing.status, missing.output["status_code"]) == ("failed", 404)
    moved = toolbox.run({"tool": "http_get", "args": {"url": f"{base_url}/redirect"}})
    assert (moved.output["status_code"], moved.output["url"]) == (200, f"{base_url}/hello")
    assert moved.output["body"] == "hello from the server"


def test_http_get_to_a_closed_port_fails(toolbox: Toolbox) -> None:
    result = toolbox.run(
        {"tool": "http_get", "args": {"url": "http://127.0.0.1:9/", "timeout_seconds": 2}}
    )
    assert result.status == "failed"
    assert result.output["error"] in ("http_error", "timeout")
