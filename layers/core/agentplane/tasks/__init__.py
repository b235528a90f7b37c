"""Tasks (see routes.py)."""
