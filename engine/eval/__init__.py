"""Evaluation after tuning: eval sets, validation loss, forgetting and bias probes, reports."""
