"""Named river pipelines: the learner, the benchmarks and the tests build models by name.

Constructor parameters are configuration (river style); ``build`` forwards ``**params`` to the
pipeline's factory, so ``build("logreg", lr=0.05)`` is a differently configured model of the
same kind.

>>> sorted(PIPELINES)
['fm', 'logreg']
>>> model = build("logreg")
>>> list(model.steps)
['NumericStandardScaler', 'LogisticRegression']
>>> x = {"device=mobile": 1.0, "log_price": 2.5}
>>> model.predict_proba_one(x)
{False: 0.5, True: 0.5}
>>> model.learn_one(x, True)
>>> model.predict_proba_one(x)[True] > 0.5
True
>>> build("fm", n_factors=4)["FMClassifier"].n_factors
4
>>> build("svm")
Traceback (most recent call last):
...
KeyError: "unknown pipeline 'svm'; known: fm, logreg"
"""

from __future__ import annotations

from collections.abc import Callable

from river import compose, facto, linear_model, optim

from app.learners.scaling import NumericStandardScaler

__all__ = ["PIPELINES", "build", "logreg", "fm"]


def logreg(lr: float = 0.01, l2: float = 0.0, intercept_lr: float | None = None) -> compose.Pipeline:
    """Standard scaling of the numeric features, then logistic regression (SGD)."""
    return compose.Pipeline(
        NumericStandardScaler(),
        linear_model.LogisticRegression(
            optimizer=optim.SGD(lr), l2=l2, intercept_lr=lr if intercept_lr is None else intercept_lr
        ),
    )


def fm(
    n_factors: int = 8,
    lr: float = 0.01,
    l2_weight: float = 0.0,
    l2_latent: float = 0.0,
    seed: int = 42,
) -> compose.Pipeline:
    """Standard scaling, then a factorization machine (pairwise feature interactions)."""
    return compose.Pipeline(
        NumericStandardScaler(),
        facto.FMClassifier(
            n_factors=n_factors,
            weight_optimizer=optim.SGD(lr),
            latent_optimizer=optim.SGD(lr),
            l2_weight=l2_weight,
            l2_latent=l2_latent,
            intercept_lr=lr,
            seed=seed,
        ),
    )


PIPELINES: dict[str, Callable[..., compose.Pipeline]] = {"logreg": logreg, "fm": fm}


def build(name: str, **params) -> compose.Pipeline:
    """A fresh, untrained pipeline of the named kind, configured with ``params``."""
    try:
        factory = PIPELINES[name]
    except KeyError:
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(sorted(PIPELINES))}") from None
    return factory(**params)
