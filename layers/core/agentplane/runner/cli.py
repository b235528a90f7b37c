"""`agentplane runner`: the reference runner as a subcommand (wired by `agentplane.cli`)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import platform
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from agentplane import __version__
from agentplane.runner.client import (
    ProtocolError,
    RunnerAuthError,
    RunnerClient,
    ServerUnavailableError,
)
from agentplane.runner.loop import Runner, RunnerOptions
from agentplane.runner.socket import DoorbellSocket
from agentplane.runner.tools import SHELL_MAX_TIMEOUT_S, TOKEN_ENV_VAR, Toolbox
from agentplane.settings import Settings

logger = logging.getLogger("agentplane.runner")

DESCRIPTION = """\
Run approved actions of one agent on this machine. The runner claims actions the server
has approved, checks each one before running it (the payload's SHA-256, the server's
Ed25519 approval signature, the approval's expiry, the agent) and runs only allowlisted
tools: read_file, write_file and http_get inside --workspace, and shell when
--allow-shell is given. http_get reaches only public addresses (checked after DNS and on
each redirect) unless --allow-private-network is given. SIGINT/SIGTERM: finish the
action in flight, hand back the claimed ones not started, close the session (a second
signal aborts).

Transport (--transport): claims always go over HTTP. With `auto` (the default) the
runner opens the WebSocket doorbell the server names at registration, claims the moment
an action is approved and polls only every --slow-poll-interval seconds in case a
doorbell was lost; when the socket fails it polls every --poll-interval seconds and
retries the socket with jittered backoff. `ws` keeps to the socket (slow polling only),
`poll` never opens one. The socket is renewed before API Gateway's 2 hour limit; a
socket that closes takes the session offline on the server at once.
"""


def _server_url(text: str) -> str:
    url = httpx.URL(text)
    if url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL")
    return text


def _bounded(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], Any]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not between {low:g} and {high:g}")
        return value

    return parse


def add_runner_parser(subparsers: Any) -> None:
    """Register the `runner` subcommand on the `agentplane` parser's subparsers."""
    parser = subparsers.add_parser(
        "runner",
        help="run approved actions of one agent on this machine",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--server", required=True, type=_server_url, help="the agentplane server's base URL"
    )
    parser.add_argument(
        "--token",
        help=f"the runner token of the agent (default: ${TOKEN_ENV_VAR}, which is safer:"
        " a command-line argument is visible in the process list)",
    )
    parser.add_argument(
        "--workspace",
        type=Path,
        default=Path("runner-workspace"),
        help="the only directory the tools may touch; created if missing (./runner-workspace)",
    )
    parser.add_argument(
        "--allow-shell",
        action="store_true",
        help="enable the shell tool (off by default: it can do anything this user can)",
    )
    parser.add_argument(
        "--allow-private-network",
        action="store_true",
        help="let http_get reach loopback, link-local (cloud metadata), private, multicast"
        " and reserved addresses (off by default: they are this machine and its network)",
    )
    parser.add_argument(
        "--max",
        type=_bounded(int, 1, 50),
        default=1,
        help="actions claimed at once, 1..50 (1)",
    )
    parser.add_argument(
        "--lease-seconds",
        type=_bounded(int, 10, 3600),
        default=60,
        help="lease asked for each claim, 10..3600 (60); a tool's timeout is cut to the lease",
    )
    parser.add_argument(
        "--poll-interval",
        type=_bounded(float, 0, 3600),
        default=2.0,
        help="seconds to wait when the queue is empty (2)",
    )
    parser.add_argument(
        "--transport",
        choices=["auto", "ws", "poll"],
        default="auto",
        help="how the runner learns of approved work: auto (WebSocket doorbell, polling"
        " while it is down), ws (doorbell and slow polling only), poll (no socket) (auto)",
    )
    parser.add_argument(
        "--slow-poll-interval",
        type=_bounded(float, 1, 3600),
        default=30.0,
        help="seconds between claims while the doorbell socket is open (30)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=_bounded(float, 0.1, 3600),
        default=20.0,
        help="seconds between HTTP heartbeats while no doorbell socket is open; with one"
        " open, its pings (every 5 minutes, inside API Gateway's idle timeout) are the"
        " heartbeat (20)",
    )
    parser.add_argument(
        "--once", action="store_true", help="exit 0 as soon as a claim comes back empty"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (INFO)",
    )
    parser.set_defaults(func=cmd_runner)


def _local_ip(server: str) -> str | None:
    """The address this machine uses to reach the server (no packet is sent)."""
    url = httpx.URL(server)
    try:
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.connect(address)  # UDP: only picks the route
            return str(probe.getsockname()[0])
    except (OSError, IndexError):
        return None


def session_metadata(server: str) -> dict[str, Any]:
    """What the session tells the server about this runner."""
    return {
        "os": platform.platform(),
        "hostname": socket.gethostname(),
        "ip": _local_ip(server),
        "runner_version": __version__,
        "pid": os.getpid(),
    }


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _install_signal_handlers(runner: Runner) -> Callable[[], None]:
    """SIGINT/SIGTERM stop the runner; a second one aborts. Returns the undo."""
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in signals}

    def handle(signum: int, _frame: FrameType | None) -> None:
        if runner.stopping:
            raise KeyboardInterrupt
        runner.stop()
        logger.warning(
            "%s: stopping after the action in flight (send it again to abort)",
            signal.Signals(signum).name,
        )

    for signum in signals:
        signal.signal(signum, handle)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def execute(
    args: argparse.Namespace,
    http: httpx.Client,
    token: str,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> int:
    """Run the runner over `http` (base_url: the server); the exit code."""
    client = RunnerClient(http, token)
    toolbox = Toolbox(
        args.workspace,
        allow_shell=args.allow_shell,
        allow_private_network=args.allow_private_network,
    )
    options = RunnerOptions(
        max_claim=args.max,
        lease_seconds=args.lease_seconds,
        poll_interval_s=args.poll_interval,
        heartbeat_interval_s=args.heartbeat_interval,
        once=args.once,
        transport=args.transport,
        slow_poll_interval_s=args.slow_poll_interval,
    )
    if args.allow_shell and args.lease_seconds < SHELL_MAX_TIMEOUT_S:
        logger.info(
            "shell commands are stopped at the end of their lease (--lease-seconds %d)",
            args.lease_seconds,
        )
    runner = Runner(
        client,
        toolbox,
        options,
        metadata=metadata if metadata is not None else session_metadata(args.server),
        open_socket=lambda url, session_id, ring: DoorbellSocket(
            url, token, session_id, ring, user_agent=f"agentplane-runner/{__version__}"
        ),
    )
    logger.info(
        "runner %s: server %s, workspace %s, tools %s",
        __version__,
        args.server,
        toolbox.workspace,
        "read_file, write_file, http_get"
        + (" (private network allowed)" if toolbox.allow_private_network else "")
        + (", shell" if args.allow_shell else ""),
    )
    restore = _install_signal_handlers(runner)
    try:
        return runner.run()
    except RunnerAuthError as exc:
        print(
            f"agentplane runner: the server refused the runner token ({exc});"
            f" check --token or ${TOKEN_ENV_VAR}",
            file=sys.stderr,
        )
        return 2
    except (ServerUnavailableError, ProtocolError) as exc:
        print(f"agentplane runner: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # A second signal: the action in flight was killed, the session closed, and the
        # server puts what the session held back in the queue.
        print("agentplane runner: aborted", file=sys.stderr)
        return 130
    finally:
        restore()


def configure_logging(level: str) -> None:
    """Plain text lines on stderr, each once: the runner is a program on a person's
    machine. Its loggers stop short of the `agentplane` logger, where Powertools writes
    the server's JSON lines to stdout."""
    plain = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=plain, stream=sys.stderr)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(plain))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    # httpx logs every request at INFO; the runner logs what matters itself.
    for noisy in ("httpx", "httpcore", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_runner(settings: Settings, args: argparse.Namespace) -> int:
    """`agentplane runner`: configure logging, connect, run until stopped."""
    token = args.token
    if not token and settings.runner_token is not None:
        token = settings.runner_token.get_secret_value()
    if not token:
        print(f"agentplane runner: no token: pass --token or set ${TOKEN_ENV_VAR}", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    server = httpx.URL(args.server)
    if server.scheme == "http" and not _is_loopback(server.host):
        logger.warning("%s is plain HTTP: the token and actions travel unencrypted", args.server)
    with httpx.Client(
        base_url=args.server,
        timeout=httpx.Timeout(30.0, connect=10.0),
        headers={"User-Agent": f"agentplane-runner/{__version__}"},
    ) as http:
        return execute(args, http, token)
