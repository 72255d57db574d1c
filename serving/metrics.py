"""Prometheus metrics of one serving process (its own registry, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=reg)
        self.request_latency = Histogram(
            "tributary_http_request_duration_seconds", "HTTP request latency per route",
            ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=reg,
        )
        self.ingested = Counter(
            "tributary_aggregates_ingested_total", "aggregate records applied to Redis, by outcome",
            ["result"], registry=reg,
        )
        self.bad_records = Counter(
            "tributary_aggregates_bad_records_total", "aggregate records rejected (undecodable or invalid)",
            ["reason"], registry=reg,
        )
        self.rollups = Counter(
            "tributary_rollups_merged_total", "roll-up buckets re-merged from their children", registry=reg,
        )
        self.ingest_errors = Counter(
            "tributary_ingest_errors_total", "consumer or Redis errors met by the ingester", ["stage"], registry=reg,
        )
        self.newest_window_end = Gauge(
            "tributary_newest_window_end_ms", "end of the newest window written to Redis (ms)", registry=reg,
        )
        # Models (serving.models.ModelRegistry)
        self.model_rejected = Counter(
            "tributary_model_artifacts_rejected_total",
            "models.v1 artifacts rejected (unsigned, bad signature, corrupt, stale version, warm-up failed, ...)",
            ["reason"], registry=reg,
        )
        self.model_activations = Counter(
            "tributary_model_activations_total", "model versions swapped in, by model and cause (stream | admin)",
            ["model", "cause"], registry=reg,
        )
        self.model_active_version = Gauge(
            "tributary_model_active_version", "version of the active model, per model name", ["model"], registry=reg,
        )
        self.model_load_seconds = Histogram(
            "tributary_model_load_seconds", "verify + unpickle + warm-up + swap of one artifact",
            buckets=LATENCY_BUCKETS, registry=reg,
        )
