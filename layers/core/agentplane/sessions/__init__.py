"""Runner sessions: presence, heartbeats and the reaper."""
