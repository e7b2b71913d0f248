"""Scoring: what scoring needs of a scene, NAVSIM's tracking simulator, the PDM scorer, facts."""
