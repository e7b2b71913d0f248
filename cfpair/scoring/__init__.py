"""Scoring: the scene context scoring needs, NAVSIM's tracking simulator, the PDM scorer, all facts."""
