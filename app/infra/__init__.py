"""Plumbing shared by every feature: workers off the UI thread, engine child processes, the stall monitor."""
