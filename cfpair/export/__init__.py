"""Exports of pair shards for other trainers (TRL, LLaMA-Factory, verl) and the reward that
scores a policy's answer against a stored scene."""
