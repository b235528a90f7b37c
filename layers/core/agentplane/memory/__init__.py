"""Memory (see routes.py)."""
