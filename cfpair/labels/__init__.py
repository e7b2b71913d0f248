"""Safety labels: the labeler interface, the rules labeler, the LLM labeler, prompts and grounding
checks against the facts (the label schema itself is ``cfpair.records.label``)."""
