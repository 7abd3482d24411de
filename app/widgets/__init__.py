"""Widgets and styles shared by several features (theme, plot style)."""
