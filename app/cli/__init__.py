"""The ``tributary`` command: the composition root.

The one part of ``app`` allowed to reach adapters (Kafka, Redis, local processes), and only
inside command functions, so importing it stays cheap and pure.
"""
