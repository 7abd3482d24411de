"""The run folder and what it says. Light: no torch, no transformers.

events (the events.jsonl format: writer, the one parser, readers forwards and backwards),
tail (following a growing log), text (events in words, for the CLI and the GUI), verdict (the
one judgement of a run's state and ending), state (the folder's layout, liveness and summary),
history (plottable series, settings diff), checkpoints, names (display names).
"""
