"""The Evaluate tab: scorecard, per-item answers, validation loss per checkpoint."""
