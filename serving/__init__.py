"""The serving tier: FastAPI over Redis, fed from ``aggregates.v1`` by a background ingester."""
