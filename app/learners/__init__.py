"""Online learners on river: named pipelines, the prequential evaluator, drift detection on the
loss, and the signed model artifact. Pure core: no Kafka, Redis, Flink, FastAPI or torch here.

One concept per module:

* :mod:`app.learners.scaling`: a standard scaler that leaves one-hot indicators alone
* :mod:`app.learners.pipelines`: named river pipelines and ``build(name, **params)``
* :mod:`app.learners.auc`: ROC AUC with O(1) updates, as a river metric
* :mod:`app.learners.calibration`: expected calibration error as a river metric
* :mod:`app.learners.prequential`: predict-then-learn evaluation equal to river's own
* :mod:`app.learners.drift`: ADWIN on the per-example log loss, emitting drift events
* :mod:`app.learners.artifact`: the versioned, HMAC-signed model artifact
* :mod:`app.learners.synthetic`: a deterministic synthetic example stream for tests and benchmarks
"""
