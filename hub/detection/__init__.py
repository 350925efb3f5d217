"""Detectors that turn sensor streams into events (falls, inactivity)."""
