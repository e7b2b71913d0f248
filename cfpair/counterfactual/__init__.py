"""Counterfactual safety pairing: scene context, candidate futures, scoring, pair selection."""
