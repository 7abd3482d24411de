"""The Train tab: run setup, launching and following runs, live plots, comparing runs."""
