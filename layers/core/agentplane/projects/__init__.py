"""Projects of an organization."""
