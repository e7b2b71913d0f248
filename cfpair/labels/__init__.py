"""Safety labels: Pydantic models, the rules labeler, grounding checks against the facts."""
