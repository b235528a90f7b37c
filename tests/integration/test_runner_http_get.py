"""The runner's http_get tool against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agentplane.runner.tools import OUTPUT_LIMIT_BYTES, Toolbox

BIG = b"z" * (OUTPUT_LIMIT_BYTES * 4)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/hello":
            self._send(200, b"hello from the server", "text/plain; charset=utf-8")
        elif self.path == "/big":
            self._send(200, BIG, "application/octet-stream")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/hello")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, b"no such page", "text/plain")

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


@pytest.fixture
def toolbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Toolbox:
    # A proxy from the environment must not stand between the tool and 127.0.0.1.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    return Toolbox(tmp_path / "ws")


def test_http_get_fetches_a_page(base_url: str, toolbox: Toolbox) -> None:
    result = toolbox.run({"tool": "http_get", "args": {"url": f"{base_url}/hello"}})
    assert result.status == "succeeded"
    assert result.output == {
        "status_code": 200,
        "headers": {"content-type": "text/plain; charset=utf-8", "content-length": "21"},
        "body": "hello from the server",
        "truncated": False,
    }


def test_http_get_truncates_a_large_body(base_url: str, toolbox: Toolbox) -> None:
    result = toolbox.run({"tool": "http_get", "args": {"url": f"{base_url}/big"}})
    assert result.status == "succeeded"
    assert result.output["truncated"] is True
    assert len(result.output["body"]) == OUTPUT_LIMIT_BYTES


def test_http_get_reports_errors_and_redirects_as_they_are(base_url: str, toolbox: Toolbox) -> None:
    missing = toolbox.run({"tool": "http_get", "args": {"url": f"{base_url}/missing"}})
    assert (missing.status, missing.output["status_code"]) == ("failed", 404)
    moved = toolbox.run({"tool": "http_get", "args": {"url": f"{base_url}/redirect"}})
    assert moved.output["status_code"] == 302
    assert moved.output["headers"]["location"] == "/hello"


def test_http_get_to_a_closed_port_fails(toolbox: Toolbox) -> None:
    result = toolbox.run(
        {"tool": "http_get", "args": {"url": "http://127.0.0.1:9/", "timeout_seconds": 2}}
    )
    assert result.status == "failed"
    assert result.output["error"] in ("http_error", "timeout")
