"""Shared test support: the tiny model, engine helpers and the network guard (on pytest's pythonpath)."""
