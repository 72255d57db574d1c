"""Contracts between Tributary's stages: the event schema and the aggregate record."""
