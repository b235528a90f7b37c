"""Agents, their configs and their runner tokens (see routes.py)."""
