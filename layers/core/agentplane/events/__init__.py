"""Notifications: domain events published after commit, and organizations' webhooks."""
