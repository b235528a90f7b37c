"""`python -m bench [NAME ...]`: run the benchmarks (all by default)."""

from __future__ import annotations

import argparse

from bench import cold_import

BENCHMARKS = {"cold_import": cold_import.main}


def main() -> None:
    """Entry point of `make bench`."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"which to run: {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    for name in args.names or list(BENCHMARKS):
        BENCHMARKS[name]()


if __name__ == "__main__":
    main()
