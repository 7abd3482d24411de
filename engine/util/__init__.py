"""Small helpers every layer may use: atomic files, the data folder, machine diagnostics."""
