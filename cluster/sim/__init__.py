"""Deterministic simulation of many membership cores under seeded faults (``python -m cluster.sim``)."""
