"""The tool catalog: every tool a runner has, its arguments' schema, reversible or not."""
