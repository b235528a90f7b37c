"""`python -m bench [NAME [--option VALUE ...]] ...`: run the benchmarks (all by default).

Each name may be followed by its own options, e.g.
`python -m bench queue_throughput --actions 2000 reaper_cost --sessions 100000`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import (
    cold_import,
    memory_archive,
    mirror_heuristic,
    queue_throughput,
    reaper_cost,
    runner_transport,
    transition_cost,
    workflow_cost,
)


@dataclass(frozen=True)
class Option:
    """A positive integer option of one benchmark, passed to its `main` by name."""

    name: str
    default: int
    help: str


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's entry point and the options it takes."""

    main: Callable[..., Path]
    options: tuple[Option, ...] = ()

    def parser(self, name: str) -> argparse.ArgumentParser:
        """The parser of this benchmark's options."""
        parser = argparse.ArgumentParser(prog=f"python -m bench {name}")
        for option in self.options:
            parser.add_argument(
                f"--{option.name}",
                dest=option.name,
                type=_positive_int,
                default=option.default,
                help=f"{option.help} (default {option.default:,})",
            )
        return parser


BENCHMARKS = {
    "cold_import": Benchmark(
        cold_import.main,
        (Option("rounds", 9, "fresh processes per module"),),
    ),
    "mirror_heuristic": Benchmark(
        mirror_heuristic.main,
        (Option("messages", mirror_heuristic.DEFAULT_MESSAGES, "generated messages analyzed"),),
    ),
    "memory_archive": Benchmark(
        memory_archive.main,
        (Option("nodes", memory_archive.DEFAULT_NODES, "live memory nodes in the table"),),
    ),
    "queue_throughput": Benchmark(
        queue_throughput.main,
        (
            Option("actions", queue_throughput.DEFAULT_ACTIONS, "items per contestant"),
            Option("workers", queue_throughput.WORKERS, "concurrent workers per contestant"),
        ),
    ),
    "reaper_cost": Benchmark(
        reaper_cost.main,
        (Option("sessions", reaper_cost.DEFAULT_SESSIONS, "live sessions in the table"),),
    ),
    "runner_transport": Benchmark(
        runner_transport.main,
        (
            Option("actions", runner_transport.DEFAULT_ACTIONS, "approvals timed per transport"),
            Option("runners", runner_transport.DEFAULT_RUNNERS, "idle runners per transport"),
            Option("window", runner_transport.DEFAULT_WINDOW, "seconds of idle CPU measured"),
        ),
    ),
    "transition_cost": Benchmark(
        transition_cost.main,
        (Option("actions", transition_cost.DEFAULT_ACTIONS, "actions taken through the loop"),),
    ),
    "workflow_cost": Benchmark(
        workflow_cost.main,
        (
            Option("nodes", workflow_cost.DEFAULT_NODES, "nodes per workflow shape"),
            Option("repeat", workflow_cost.DEFAULT_REPEAT, "runs per shape (median time)"),
        ),
    ),
}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _split(argv: list[str]) -> list[tuple[str, list[str]]]:
    """`[name, options..., name, options...]` into (name, options) groups."""
    groups: list[tuple[str, list[str]]] = []
    for arg in argv:
        if arg in BENCHMARKS:
            groups.append((arg, []))
        elif groups:
            groups[-1][1].append(arg)
        else:
            groups.append((arg, []))  # an unknown name, reported below
    return groups


def _usage() -> str:
    lines = [__doc__ or "", "benchmarks:"]
    for name, benchmark in BENCHMARKS.items():
        options = " ".join(f"[--{o.name} N]" for o in benchmark.options)
        lines.append(f"  {name} {options}")
        lines.extend(
            f"      --{o.name}: {o.help} (default {o.default:,})" for o in benchmark.options
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `make bench`."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        usage="python -m bench [NAME [--option VALUE ...]] ...",
        description=_usage(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    raw = parser.parse_args(argv).args
    groups = _split(raw) or [(name, []) for name in BENCHMARKS]
    unknown = sorted({name for name, _ in groups if name not in BENCHMARKS})
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    # Parse every group before running any, so a typo fails at once, not after an hour.
    runs = []
    for name, options in groups:
        benchmark = BENCHMARKS[name]
        sub = benchmark.parser(name)
        parsed, extra = sub.parse_known_args(options)
        if extra:
            parser.error(f"{name}: unknown option(s) {' '.join(extra)}\n{_usage()}")
        runs.append((benchmark, vars(parsed)))
    for benchmark, kwargs in runs:
        benchmark.main(**kwargs)


if __name__ == "__main__":
    main()
