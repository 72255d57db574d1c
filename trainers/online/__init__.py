"""The online learner service: consumes ``examples.v1``, learns predict-then-learn with river,
publishes prequential metrics and drift events to ``metrics.v1`` and signed snapshots to
``models.v1``.

* :mod:`trainers.online.core`: the pure step logic (:class:`LearnerCore`), no I/O
* :mod:`trainers.online.ports`: the thin I/O interfaces the service needs
* :mod:`trainers.online.memory`: in-memory implementations of the ports (tests, demos)
* :mod:`trainers.online.kafka_ports`: the Kafka implementations (confluent-kafka)
* :mod:`trainers.online.service`: :class:`OnlineLearner`, wiring core and ports
* ``python -m trainers.online``: the process
"""
