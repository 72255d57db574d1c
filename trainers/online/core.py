"""The learner's step logic, free of I/O: decode → features → predict → score → learn, plus the
state that a snapshot must carry so that a restart continues exactly where the snapshot was.

>>> import orjson
>>> from app.learners.synthetic import synthetic_examples
>>> from app.learners.artifact import verify
>>> core = LearnerCore("ctr", "logreg", metrics_every_n=500)
>>> records = [(0, i, orjson.dumps(r)) for i, r in enumerate(synthetic_examples(1_000, seed=4))]
>>> out = core.process(records + [(0, 1_000, b"not json")])
>>> [(e["type"], e["n"]) for e in out]
[('prequential', 500), ('prequential', 1000)]
>>> core.n, core.malformed, core.offsets
(1000, 1, {0: 1001})
>>> blob = core.snapshot(b"k" * 32, topic="examples.v1", created_at=0)
>>> again = LearnerCore.restore(verify(blob, b"k" * 32), "ctr", "logreg")
>>> again.n, again.version, again.offsets, again.prequential.get() == core.prequential.get()
(1000, 1, {0: 1001}, True)
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from app.features import FEATURE_SPEC_VERSION, features
from app.learners.artifact import Artifact, ArtifactError, sign
from app.learners.pipelines import build
from app.learners.prequential import Prequential

log = logging.getLogger(__name__)

_DECODE_ERRORS = (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError)


class LearnerCore:
    """One model learning prequentially from a stream of ``examples.v1`` records.

    Parameters
    ----------
    model_name
        The artifact's name (the ``models.v1`` key).
    pipeline_name, pipeline_params
        Which :mod:`app.learners.pipelines` pipeline, configured how.
    metrics_every_n
        Emit a prequential metrics record every this many learned examples.

    Drift detection and recovery live in the model (:class:`~app.learners.adaptive.DriftAdaptive`,
    configured by ``pipeline_params``), so they are in every snapshot and river's own loop over the
    same model reproduces them; the core publishes each detection (``model.drift_event``).
    """

    def __init__(
        self,
        model_name: str,
        pipeline_name: str = "logreg",
        pipeline_params: dict[str, Any] | None = None,
        *,
        metrics_every_n: int = 10_000,
    ) -> None:
        self.model_name = model_name
        self.pipeline_name = pipeline_name
        self.pipeline_params = dict(pipeline_params or {})
        self.metrics_every_n = metrics_every_n
        self.model = build(pipeline_name, **self.pipeline_params)
        self.prequential = Prequential()
        self.offsets: dict[int, int] = {}  # partition -> next offset to read
        self.watermark: int | None = None  # newest example_time learned (ms)
        self.malformed = 0
        self.version = 0  # version of the newest snapshot taken

    @property
    def kind(self) -> str:
        return f"river:{self.pipeline_name}"

    @property
    def n(self) -> int:
        """Examples learned (and scored)."""
        return self.prequential.n

    @property
    def consumed(self) -> int:
        """Records consumed, malformed ones included."""
        return self.prequential.n + self.malformed

    def process(self, records) -> list[dict]:
        """Predict-then-learn every ``(partition, offset, value)`` record, in order.

        Returns the records to publish on ``metrics.v1``: a prequential metrics record every
        ``metrics_every_n`` examples and a drift record on each drift the model detected.
        Malformed records are counted and skipped; their offsets still advance.
        """
        loads, feats = orjson.loads, features
        model = self.model
        predict, learn = model.predict_proba_one, model.learn_one
        preq = self.prequential
        score = preq.update
        offsets = self.offsets
        every = self.metrics_every_n
        wm = self.watermark if self.watermark is not None else -(1 << 62)
        out: list[dict] = []
        for partition, offset, value in records:
            offsets[partition] = offset + 1
            try:
                d = loads(value)
                y = d["label"]
                if y == 1:
                    y = True
                elif y == 0:
                    y = False
                else:
                    raise ValueError("label must be 0 or 1")
                x = feats(d)
            except _DECODE_ERRORS:
                self.malformed += 1
                if self.malformed & (self.malformed - 1) == 0:  # log 1st, 2nd, 4th, 8th, ...
                    log.warning("skipped malformed example at %s/%s (%d so far)", partition, offset, self.malformed)
                continue
            t = d.get("example_time")
            if t.__class__ is int and t > wm:
                wm = t
            p = predict(x)
            score(y, p)
            learn(x, y)
            event = getattr(model, "drift_event", None)
            if event is not None:
                self.watermark = wm
                out.append(self._record("drift", **event.at(wm).to_dict()))
            if preq.n % every == 0:
                self.watermark = wm
                out.append(self.metrics_record())
        if wm > -(1 << 62):
            self.watermark = wm
        return out

    def _record(self, type_: str, **fields) -> dict:
        base = {"type": type_, "model": self.model_name, "kind": self.kind, "version": self.version}
        base.update(fields)
        base["type"] = type_
        return base

    def metrics_record(self) -> dict:
        return self._record(
            "prequential", n=self.n, metrics=self.prequential.get(), watermark=self.watermark, malformed=self.malformed,
            drift_detections=self.drift_detections,
        )

    @property
    def drift_detections(self) -> int:
        """Drifts the model detected so far (0 for a model without a monitor)."""
        monitor = getattr(self.model, "monitor", None)
        return monitor.detections if monitor is not None else 0

    def snapshot(self, key: bytes, *, topic: str | None, created_at: int | None = None) -> bytes:
        """A signed artifact of the model and of everything needed to resume (next version)."""
        self.version += 1
        state = {
            "prequential": self.prequential,
            "malformed": self.malformed,
            "pipeline_params": self.pipeline_params,
            "metrics_every_n": self.metrics_every_n,
        }
        return sign(
            self.model,
            key=key,
            model_name=self.model_name,
            kind=self.kind,
            version=self.version,
            state=state,
            trained_until_watermark=self.watermark,
            kafka_topic=topic,
            kafka_offsets=self.offsets,
            metrics={**self.prequential.get(), "n": self.n},
            examples_seen=self.n,
            created_at=created_at,
        )

    @classmethod
    def restore(cls, artifact: Artifact, model_name: str, pipeline_name: str, **config) -> LearnerCore:
        """Resume from a verified artifact: model, metric and drift state, offsets, watermark."""
        h = artifact.header
        if h.model_name != model_name:
            raise ArtifactError(f"snapshot is for model {h.model_name!r}, not {model_name!r}")
        if h.kind != f"river:{pipeline_name}":
            raise ArtifactError(f"snapshot of {model_name!r} is a {h.kind!r}, not river:{pipeline_name}")
        if h.feature_spec_version != FEATURE_SPEC_VERSION:
            raise ArtifactError(
                f"snapshot used feature spec {h.feature_spec_version}, this build computes {FEATURE_SPEC_VERSION}"
            )
        state = artifact.state or {}
        core = cls(model_name, pipeline_name, state.get("pipeline_params"), **config)
        core.model = artifact.model
        core.prequential = state["prequential"]
        core.malformed = state.get("malformed", 0)
        core.offsets = dict(h.kafka_offsets)
        core.watermark = h.trained_until_watermark
        core.version = h.version
        return core
