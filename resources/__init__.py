"""Data files shipped with Whetstone (demo dataset, presets), located with importlib.resources."""
