"""agentplane: the serverless control plane for remote AI agents."""

__version__ = "0.1.0"
