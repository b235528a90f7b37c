"""A fake OpenAI-compatible chat-completions server on 127.0.0.1, for tests and local demos.

In tests: `with FakeProvider() as fake:`, then `fake.script(Reply(...), ...)` queues the
answers and `fake.requests` holds what the client sent. As a program
(`python -m tests.support.fake_provider --port 8765 [--script FILE]`) it serves forever,
answering every request with a small scripted behaviour (see `demo_reply`), after the
replies of the optional script file (a JSON list of Reply fields) have been used up.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

_ids = itertools.count(1)


@dataclass
class Reply:
    """One scripted answer: status, body (dict as JSON, str as is), delay and headers."""

    status: int = 200
    # None answers the default completion ("ok").
    body: dict[str, Any] | str | None = None
    delay_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


Responder = Callable[[dict[str, Any] | None], Reply]


class FakeProvider:
    """A chat-completions server in a daemon thread; serves queued replies in order."""

    def __init__(self, port: int = 0, responder: Responder | None = None) -> None:
        self._responder = responder or (lambda _request: Reply())
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        host, bound_port = self._server.server_address[:2]
        self.base_url = f"http://{host!s}:{bound_port}/v1"

    def __enter__(self) -> FakeProvider:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Serve in a daemon thread."""
        # A short poll interval: shutdown() waits up to one interval, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the demo program)."""
        self._server.serve_forever()

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def script(self, *replies: Reply) -> None:
        """Queue replies, served one per request in order; then the default answer."""
        with self._lock:
            self._replies.extend(replies)

    @staticmethod
    def completion(
        content: str = "",
        tool_calls: list[dict[str, Any]] | None = None,
        model: str = "fake-model",
    ) -> dict[str, Any]:
        """A well-formed `chat.completion` body with one choice."""
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["content"] = content or None
            message["tool_calls"] = tool_calls
        return {
            "id": f"chatcmpl-fake-{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if tool_calls else "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    @staticmethod
    def tool_call(call_id: str, name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
        """One `function` tool call; `arguments` as a JSON string (a str is kept verbatim)."""
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
        return {"id": call_id, "type": "function", "function": {"name": name, "arguments": raw}}

    def _next_reply(self, request_json: dict[str, Any] | None) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
        return self._responder(request_json)

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = None
                request_json = parsed if isinstance(parsed, dict) else None
                fake._record(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "json": parsed,
                    }
                )
                self._answer(fake._next_reply(request_json))

            def _answer(self, reply: Reply) -> None:
                if reply.delay_seconds:
                    time.sleep(reply.delay_seconds)
                if reply.body is None:
                    payload = json.dumps(FakeProvider.completion("ok")).encode()
                    content_type = "application/json"
                elif isinstance(reply.body, str):
                    payload = reply.body.encode()
                    content_type = "text/plain; charset=utf-8"
                else:
                    payload = json.dumps(reply.body).encode()
                    content_type = "application/json"
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    # The client gave up (a timeout test); nobody is left to answer.
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def demo_reply(request_json: dict[str, Any] | None) -> Reply:
    """The demo's model: a write_file call when asked to write, else echo the last tool result."""
    raw_messages = (request_json or {}).get("messages")
    messages: list[Any] = raw_messages if isinstance(raw_messages, list) else []
    model = str((request_json or {}).get("model") or "fake-model")
    last = messages[-1] if messages else None
    asked_to_write = (
        isinstance(last, dict)
        and last.get("role") == "user"
        and re.search(r"\bwrite\b", str(last.get("content") or ""), re.IGNORECASE) is not None
    )
    if asked_to_write:
        call = FakeProvider.tool_call(
            f"call_{next(_ids)}",
            "write_file",
            {"path": "notes/hello.txt", "content": "hello from the agent\n"},
        )
        return Reply(body=FakeProvider.completion(tool_calls=[call], model=model))
    tool_results = [m for m in messages if isinstance(m, dict) and m.get("role") == "tool"]
    text = "ok"
    if tool_results:
        text = f"The runner reported: {tool_results[-1].get('content') or ''}"
    return Reply(body=FakeProvider.completion(text, model=model))


def _load_script(path: Path) -> list[Reply]:
    entries = json.loads(path.read_text())
    if not isinstance(entries, list):
        raise SystemExit(f"{path}: expected a JSON list of replies")
    return [Reply(**entry) for entry in entries]


def main(argv: list[str] | None = None) -> None:
    """Serve the demo behaviour on 127.0.0.1 until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--script", type=Path, help="JSON list of replies to serve first, in order")
    args = parser.parse_args(argv)
    fake = FakeProvider(port=args.port, responder=demo_reply)
    if args.script:
        fake.script(*_load_script(args.script))
    print(f"fake provider listening on {fake.base_url}", flush=True)
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.close()


if __name__ == "__main__":
    main()
