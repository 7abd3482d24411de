"""The run folder and what it says: layout, events, checkpoints, state and history. Light: no torch, no transformers."""
