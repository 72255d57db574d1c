"""The embedded local stack: real Kafka (KRaft), Flink, Redis, serving and the generator as local processes."""
