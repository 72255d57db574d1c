"""Prequential learning on a short span of the generator's stream does not read the label from
when the example arrived.

Examples come in ``example_time`` order: a click's example arrives seconds after its impression,
a non-click's a whole attribution window (30 s) later. Over a minute of event time, the hour-of-day
features barely move; standardized with running statistics they used to turn those seconds into
a strong signal, and the prequential loss came out far *below* the hidden click model's own loss,
which no honest model can do. They are now passed through unscaled (``app.features.PRESCALED``).
"""

from __future__ import annotations

import pytest

from app.features import features
from app.generator import EventGenerator
from app.learners.drift import log_loss_one
from app.learners.pipelines import build
from benchmarks.label_examples import label_examples, label_probabilities

WINDOW_MS = 30_000
START_MS = 1_700_000_000_000


@pytest.fixture(scope="module")
def short_stream():
    """Two minutes of event time. Only examples that became known in steady state are scored:
    in the first window only clicks can be known yet, and at the end only non-clicks of the
    impressions whose window closed: there the order itself gives the label away, whatever the
    features (a run has to be long for that to wash out; ``docs/online-learning.md``)."""
    gen = EventGenerator(seed=5, rate=500, start_ms=START_MS, n_users=5_000, n_items=1_000, n_bots=0)
    msgs = list(gen.events(60_000))
    t_last = msgs[-1].at_ms
    rows = [r for r in label_examples([m.fields for m in msgs], WINDOW_MS) if r["event_time"] + WINDOW_MS <= t_last]
    p_label = label_probabilities(gen, msgs, WINDOW_MS)
    scored = [START_MS + 2 * WINDOW_MS <= r["example_time"] < t_last - WINDOW_MS for r in rows]
    hidden = [log_loss_one(r["label"] == 1, p_label[r["event_id"]]) for r in rows]
    assert sum(scored) > 10_000
    return rows, scored, sum(h for h, s in zip(hidden, scored) if s) / sum(scored)


def _prequential(model, rows, scored) -> float:
    total = 0.0
    for r, s in zip(rows, scored):
        x, y = features(r), r["label"] == 1
        loss = log_loss_one(y, model.predict_proba_one(x).get(True, 0.0))
        model.learn_one(x, y)
        total += loss if s else 0.0
    return total / sum(scored)


def test_prequential_loss_is_not_better_than_the_hidden_model_on_a_short_span(short_stream):
    rows, scored, hidden = short_stream
    ours = _prequential(build("logreg"), rows, scored)
    print(f"{sum(scored)} examples scored: prequential {ours:.4f}, hidden model {hidden:.4f}")
    assert ours > hidden  # never better than the truth


def test_standardizing_the_hour_features_would_leak(short_stream):
    """The same model with the hour keys standardized (as before): far better than the truth."""
    rows, scored, hidden = short_stream
    model = build("logreg", adapt=False)
    model["NumericStandardScaler"]._skip = frozenset()
    assert _prequential(model, rows, scored) < 0.5 * hidden
