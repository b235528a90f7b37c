"""Conversations (see routes.py)."""
