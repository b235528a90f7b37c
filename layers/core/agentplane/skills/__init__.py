"""Skills (see routes.py)."""
