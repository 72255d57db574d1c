"""Adapters: the only place Kafka, Redis and local processes are touched (the pure core never is)."""
