"""Reading EXPLAIN (FORMAT JSON) plans in tests: which index each scan reads."""

from __future__ import annotations

from typing import Any

# The unique indexes that lead with `id`: how a statement finds rows by their id.
BY_ID = {
    "agent_sessions_pkey",
    "agent_sessions_id_agent_id_key",
    "agent_actions_pkey",
}


def scans(plan: dict[str, Any]) -> list[str]:
    """What every scan node of a plan reads: its index, or for a sequential scan
    `seq:<table>`."""
    found = []
    if plan["Node Type"] == "Seq Scan":
        found.append(f"seq:{plan['Relation Name']}")
    elif "Index Name" in plan:
        found.append(plan["Index Name"])
    for child in plan.get("Plans", []):
        found.extend(scans(child))
    return found
