"""Agents (see routes.py)."""
