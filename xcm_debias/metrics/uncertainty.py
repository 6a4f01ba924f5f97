r"""Standard errors of report metrics: how far a value could move on another draw of queries.

* **Mean over queries** (recall@k, MRR, AP@k, own-culture@1; for a 0/1 value this is the
  binomial SE): :math:`\mathrm{SE} = s/\sqrt{n}`, :math:`s` the population standard deviation
  of the :math:`n` per-query values — the limit of the bootstrap SE over queries (Efron &
  Tibshirani, *An Introduction to the Bootstrap*, 1993, §5.2).
* **Mean over groups of per-group means** (own-culture excess: the mean over languages of the
  per-language mean of :math:`\mathbb 1[\text{own}]_q - \text{chance}_q`), queries resampled
  within their group: :math:`\mathrm{SE} = \frac1G\sqrt{\sum_g s_g^2/n_g}`.
* **Any other statistic** (language TV, hubness skewness): bootstrap over queries,
  :math:`B` resamples of the :math:`n` queries with replacement, a fixed seed, and the sample
  standard deviation (ddof = 1) of the finite statistics.

Each function returns NaN where no spread can be estimated (fewer than two values, or fewer than
two finite bootstrap statistics).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from xcm_debias._validation import check_positive_int
from xcm_debias.metrics._checks import ArrayLike, as_labels, as_values

N_BOOT = 200


def mean_se(values: ArrayLike) -> float:
    """SE of the mean of per-query ``values``: population std / √n (NaN for one value)."""
    v = as_values(values, "values")
    if len(v) < 2:
        return float("nan")
    return float(v.std() / np.sqrt(len(v)))


def stratified_mean_se(values: ArrayLike, groups: ArrayLike) -> float:
    """SE of the mean over groups of the per-group means of ``values`` (queries resampled
    within their group; rows with an empty group label ignored; NaN if a group has one row)."""
    v = as_values(values, "values")
    g = as_labels(groups, "groups", len(v))
    keep = g != ""
    if not keep.any():
        raise ValueError("groups: expected at least one non-empty group label, got none")
    names, inverse = np.unique(g[keep], return_inverse=True)
    counts = np.bincount(inverse, minlength=len(names))
    if counts.min() < 2:
        return float("nan")
    means = np.bincount(inverse, weights=v[keep]) / counts
    variances = np.bincount(inverse, weights=(v[keep] - means[inverse]) ** 2) / counts
    return float(np.sqrt((variances / counts).sum()) / len(names))


def bootstrap_se(
    statistic: Callable[[np.ndarray], float], n: int, n_boot: int = N_BOOT, seed: int = 0
) -> float:
    """Bootstrap SE of ``statistic(rows)``, ``rows`` an int64 array of ``n`` query indices
    drawn with replacement (``n_boot`` draws from ``numpy.random.default_rng(seed)``)."""
    if not callable(statistic):
        raise TypeError(f"statistic: expected a callable, got {type(statistic).__name__}")
    n = check_positive_int(n, "n")
    n_boot = check_positive_int(n_boot, "n_boot", minimum=2)
    seed = check_positive_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    values = np.array([float(statistic(rng.integers(0, n, n))) for _ in range(n_boot)])
    finite = values[np.isfinite(values)]
    if n < 2 or len(finite) < 2:
        return float("nan")
    return float(finite.std(ddof=1))
