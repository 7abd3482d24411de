"""The model library dialog."""
