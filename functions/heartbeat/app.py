"""The `heartbeat` function: an EventBridge schedule (rate 1 minute).

Marks runner sessions whose heartbeat went silent as offline; returns what it reaped.
"""

from __future__ import annotations

from agentplane.handlers.jobs import heartbeat_handler

handler = heartbeat_handler
