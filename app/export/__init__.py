"""Exporting a run: merged folder or GGUF, checked after writing."""
