"""Whetstone's Qt-free engine: config, data, model loading, training, inference and the CLI."""

from engine import offline as _offline  # noqa: F401  (sets the offline environment first)

__version__ = "0.1.0"
