"""Workflow DAGs and their runs on Step Functions."""
