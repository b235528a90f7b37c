"""A stand-in for API Gateway's WebSocket management API on 127.0.0.1.

It speaks the real protocol (`POST /{stage}/@connections/{id}`, a `GoneException`
answered as 410 with `x-amzn-ErrorType`), so the code under test talks to it through a
real boto3 `apigatewaymanagementapi` client.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

STAGE = "live"


@dataclass
class FakeManagementApi:
    """What was posted to which connection, and the connections that are gone."""

    url: str = ""
    posted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)

    def client(self) -> Any:
        """A real boto3 client of this endpoint."""
        import boto3

        return boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def _handler(api: FakeManagementApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            prefix = f"/{STAGE}/@connections/"
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if not self.path.startswith(prefix):
                self._answer(404, "NotFoundException")
                return
            connection_id = unquote(self.path[len(prefix) :])
            if connection_id in api.gone:
                self._answer(410, "GoneException")
                return
            api.posted.setdefault(connection_id, []).append(json.loads(body))
            self._answer(200, None)

        def _answer(self, status: int, error: str | None) -> None:
            payload = json.dumps({"message": error} if error else {}).encode()
            self.send_response(status)
            if error:
                self.send_header("x-amzn-ErrorType", error)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def management_api() -> Iterator[FakeManagementApi]:
    """The fake, serving on a free port until the block ends."""
    api = FakeManagementApi()
    http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{http.server_address[1]}/{STAGE}"
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        yield api
    finally:
        http.shutdown()
        http.server_close()
