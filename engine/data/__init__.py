"""The data path: read rows, check them, render them for a model with loss masks."""
