"""The bundled minimal trainer: a tiny VLA, SFT, negative-enhanced SFT, anchor-based GRPO,
evaluation and the ablation (needs the ``train`` extra: torch==2.13.0)."""
