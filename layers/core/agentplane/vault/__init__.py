"""The BYOK key vault (user_keys)."""
