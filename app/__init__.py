"""Tributary's pure core: contracts, sketches, windows, features, learners, config.

Nothing under ``app`` (except the composition root ``app.cli``) imports a client for
Kafka, Redis, Flink, FastAPI or torch; ``tests/unit/test_layering.py`` enforces it.
"""

__version__ = "0.1.0"
