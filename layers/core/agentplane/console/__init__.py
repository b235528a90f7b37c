"""The approval console's page and assets (static/), served by agentplane.http.console."""
