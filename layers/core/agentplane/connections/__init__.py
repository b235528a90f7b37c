"""Connections (see routes.py)."""
