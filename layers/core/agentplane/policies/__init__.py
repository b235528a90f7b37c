"""Approval policies: which actions need how many approvals by whom (issue: policy as data)."""
