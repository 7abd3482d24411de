"""`whetstone-engine`: one module per command group, and the protocol (exit codes, error line)
the app reads."""
