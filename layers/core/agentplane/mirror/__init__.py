"""Mirror reports: analyses of a connection's conversations."""
