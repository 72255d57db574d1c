"""A standard scaler for Tributary's sparse feature dicts.

river's :class:`~river.preprocessing.StandardScaler` only sees a key when it is present, so a
one-hot indicator (always 1.0 when present) has mean 1 and variance 0 and is scaled to **0**:
the model would never see categories. :class:`NumericStandardScaler` scales the numeric keys
exactly as river does and passes indicator keys (those containing ``=``, see
:mod:`app.features`) and the already-scaled keys of :data:`app.features.PRESCALED` (the hour of
day: standardizing it would leak the label in example order) through unchanged.

>>> from math import sqrt

from river import preprocessing
>>> plain, ours = preprocessing.StandardScaler(), NumericStandardScaler()
>>> for x in ({"device=mobile": 1.0, "price": 1.0}, {"device=mobile": 1.0, "price": 3.0}):
...     plain.learn_one(x)
...     ours.learn_one(x)
>>> plain.transform_one({"device=mobile": 1.0, "price": 3.0})
{'device=mobile': 0.0, 'price': 1.0}
>>> ours.transform_one({"device=mobile": 1.0, "price": 3.0})
{'device=mobile': 1.0, 'price': 1.0}
>>> ours.learn_one({"hour_sin": 0.5}); ours.learn_one({"hour_sin": 0.51})
>>> ours.transform_one({"hour_sin": 0.51})
{'hour_sin': 0.51}

Keys that are not strings (river's own datasets) are numeric:

>>> s = NumericStandardScaler()
>>> s.learn_one({0: 1.0}); s.learn_one({0: 3.0})
>>> s.transform_one({0: 1.0})
{0: -1.0}
"""

from __future__ import annotations

from math import sqrt

from river import preprocessing

from app.features import PRESCALED

__all__ = ["NumericStandardScaler"]


class NumericStandardScaler(preprocessing.StandardScaler):
    """Standard-scales numeric keys (Welford, as river); passes ``=`` indicator keys through."""

    def __init__(self, with_std: bool = True) -> None:
        super().__init__(with_std=with_std)
        self._skip = PRESCALED

    def learn_one(self, x):
        self._learn_general(x)

    def _learn_general(self, x):
        counts, means, vars_, skip = self.counts, self.means, self.vars, self._skip
        for i, xi in x.items():
            if i.__class__ is str and ("=" in i or i in skip):
                continue
            counts[i] += 1
            old_mean = means[i]
            means[i] += (xi - old_mean) / counts[i]
            vars_[i] += ((xi - old_mean) * (xi - means[i]) - vars_[i]) / counts[i]

    def transform_one(self, x):
        if not self.with_std:
            return self._transform_general(x)
        means, vars_, skip = self.means, self.vars, self._skip
        out = {}
        try:
            for i, xi in x.items():
                if "=" in i or i in skip:
                    out[i] = xi
                else:
                    v = vars_[i]
                    out[i] = (xi - means[i]) / sqrt(v) if v else 0.0
        except TypeError:
            if all(i.__class__ is str for i in x):
                raise
            return self._transform_general(x)
        return out

    def _transform_general(self, x):
        means, vars_, with_std, skip = self.means, self.vars, self.with_std, self._skip
        out = {}
        for i, xi in x.items():
            if i.__class__ is str and ("=" in i or i in skip):
                out[i] = xi
            elif with_std:
                v = vars_[i]
                out[i] = (xi - means[i]) / sqrt(v) if v else 0.0
            else:
                out[i] = xi - means[i]
        return out

    def learn_many(self, X):  # pragma: no cover - the batch path is not used by the learner
        raise NotImplementedError("NumericStandardScaler learns one example at a time")
