"""The skill lifecycle: which status may follow which, and the error for any other move.

    suggested -> active -> deprecated -> archived     (a suggestion is promoted by a person)
    draft -> active                                   (a hand-written skill)
    deprecated -> active                              (reinstate)
    suggested -> archived, draft -> archived          (dismiss a suggestion, abandon a draft)

`suggested` is the seed's default: what a mirror report or a client proposes. Setting
the status a skill already has is not a change and is always allowed.
"""

from __future__ import annotations

from typing import Literal

from agentplane.errors import ConflictError

SkillStatus = Literal["suggested", "draft", "active", "deprecated", "archived"]

TRANSITIONS: frozenset[tuple[SkillStatus, SkillStatus]] = frozenset(
    {
        ("suggested", "active"),
        ("suggested", "archived"),
        ("draft", "active"),
        ("draft", "archived"),
        ("active", "deprecated"),
        ("deprecated", "archived"),
        ("deprecated", "active"),
    }
)


def allowed_from(requested: SkillStatus) -> list[SkillStatus]:
    """The statuses a skill may be in for `requested` to be set (itself included)."""
    return [requested, *sorted(src for src, dst in TRANSITIONS if dst == requested)]


def allowed_to(current: SkillStatus) -> list[SkillStatus]:
    """The statuses a skill in `current` may move to."""
    return sorted(dst for src, dst in TRANSITIONS if src == current)


class SkillTransitionError(ConflictError):
    """The skill's current status does not lead to the requested one."""

    type_slug = "skill-transition"
    title = "Status change not allowed"

    def __init__(self, current: SkillStatus, requested: SkillStatus) -> None:
        super().__init__(
            f"the skill is {current} and cannot become {requested}",
            current_status=current,
            requested_status=requested,
            allowed_statuses=allowed_to(current),
        )
