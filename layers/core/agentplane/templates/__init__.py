"""Templates (see routes.py)."""
