"""HTTP wiring shared by every router: problem+json errors, dependencies, app factory."""
