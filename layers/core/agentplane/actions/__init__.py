"""The agent-action queue: proposals, human decisions, signed approvals, the audit log."""
