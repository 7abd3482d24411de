"""The Chat tab: talk to the base and tuned models, side by side, prompt sets, rows for the dataset."""
