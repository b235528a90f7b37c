"""Cold import time of each Lambda handler module, beside a bare FastAPI+Mangum handler.

Each sample is a fresh `python -c "import <module>"` process, timed inside the process
(time.perf_counter around the import), so interpreter start-up is not counted. Samples of
all modules are interleaved, so machine noise hits every module alike. The figure that
matters is the ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.results_io import print_table, write_results

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "bench._bare_handler"
MODULES = [
    BASELINE,
    "functions.api.app",
    "functions.actions.app",
    "functions.heartbeat.app",
    "functions.mirror.app",
    "functions.workflows.app",
]
PROBE = (
    "import time, json, importlib; t = time.perf_counter(); importlib.import_module({m!r});"
    " print(json.dumps(time.perf_counter() - t))"
)


def sample(module: str) -> float:
    """Seconds to import `module` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(m=module)],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'layers' / 'core'}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def run(rounds: int = 9) -> list[dict[str, Any]]:
    """Interleaved rounds over every module; medians and ratios to the baseline."""
    samples: dict[str, list[float]] = {m: [] for m in MODULES}
    for i in range(rounds):
        for module in MODULES:
            samples[module].append(sample(module))
        print(f"  round {i + 1}/{rounds} done", file=sys.stderr, flush=True)
    base = statistics.median(samples[BASELINE])
    rows = []
    for module in MODULES:
        med = statistics.median(samples[module])
        rows.append(
            {
                "module": module,
                "median_ms": round(med * 1000, 1),
                "min_ms": round(min(samples[module]) * 1000, 1),
                "max_ms": round(max(samples[module]) * 1000, 1),
                "ratio_to_bare": round(med / base, 2),
            }
        )
    return rows


def main(rounds: int = 9) -> Path:
    """Run, print the table, write the JSON."""
    print(f"cold import of handler modules ({rounds} fresh processes each, interleaved)")
    rows = run(rounds)
    print_table(rows, ["module", "median_ms", "min_ms", "max_ms", "ratio_to_bare"])
    path = write_results("cold_import", rows, {"rounds": rounds, "baseline": BASELINE})
    print(f"wrote {path.relative_to(ROOT)}")
    return path
