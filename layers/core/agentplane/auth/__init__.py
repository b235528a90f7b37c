"""Who is calling: verified user tokens, runner identities and server-job contexts."""
