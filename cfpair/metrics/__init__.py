"""Trajectory metrics on top of the geometry engine: the PDMS-style scorer and per-step costs."""
