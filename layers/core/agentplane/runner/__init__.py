"""The reference runner: executes on the user's machine only the exact payload a human approved.

`agentplane runner` registers a session, claims approved actions under a lease, verifies
each one (payload hash, Ed25519 approval signature, expiry, agent) and runs it with an
explicit allowlist of tools confined to a workspace, then reports the result with the
claim's fencing token.

Modules: `models` (protocol shapes), `verify` (pure checks), `tools` (the allowlist),
`client` (the HTTP protocol), `loop` (the runner), `cli` (the subcommand).
"""
