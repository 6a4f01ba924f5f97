r"""Hubness of a retrieval: how unevenly gallery items occur in the queries' top-k lists.

Definitions as scikit-hubness (``skhubness/analysis/estimation.py``; Radovanović, Nanopoulos &
Ivanović, "Hubs in space", JMLR 2010; Feldbauer et al., ICBK 2018), over **all** gallery items,
zeros included (DBNorm's ``get_skewness`` drops zero occurrences; we do not):

* **k-occurrence** :math:`N_k(g) = |\{q : g \in \mathrm{top}_k(q)\}|`.
* **skewness** :math:`\frac{m_3}{m_2^{3/2}}`, :math:`m_j = \frac1N\sum_g (N_k(g) - \bar N_k)^j`
  (the population skewness, ``scipy.stats.skew(bias=True)``; NaN when :math:`N_k` is constant).
* **anti-hub share** :math:`|\{g : N_k(g) = 0\}| / N`.
* **Robin Hood index** :math:`\frac{\frac12\sum_g |N_k(g) - \bar N_k|}{\sum_g N_k(g)}` — the
  share of occurrences to move for every item to occur equally often.
* **hub occurrence** — share of the top-k slots taken by hubs, hubs being the items with
  :math:`N_k(g) \ge 2\bar N_k` (scikit-hubness uses :math:`2k`, which equals :math:`2\bar N_k`
  only when there are as many queries as gallery items).

**Null (random retriever).** Each query picks k of the N items uniformly, so
:math:`N_k(g) \sim \mathrm{Binomial}(|Q|, p)`, :math:`p = k/N`: skewness
:math:`(1-2p)/\sqrt{|Q|p(1-p)}`, anti-hub share :math:`(1-p)^{|Q|}`. For small ``p`` these are
the Poisson values :math:`1/\sqrt\lambda` and :math:`e^{-\lambda}`, :math:`\lambda = k|Q|/N`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xcm_debias._validation import check_positive_int
from xcm_debias.metrics._checks import ArrayLike, as_indices, as_numpy

HUB_FACTOR = 2.0


def k_occurrence(indices: ArrayLike, n_gallery: int) -> np.ndarray:
    """:math:`N_k(g)` for every gallery row ``g`` in ``[0, n_gallery)`` (int64 ``[N]``), from
    the ``[Q, k]`` top-k index matrix."""
    n_gallery = check_positive_int(n_gallery, "n_gallery")
    idx = as_indices(indices, "indices", n_gallery)
    return np.bincount(idx.reshape(-1), minlength=n_gallery).astype(np.int64)


def _occurrence(values: ArrayLike) -> np.ndarray:
    array = as_numpy(values, "k_occurrence")
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"k_occurrence: expected a non-empty 1-D array, got shape {array.shape}")
    if array.dtype.kind not in "iuf":
        raise TypeError(f"k_occurrence: expected counts, got dtype {array.dtype}")
    if not np.isfinite(array).all() or array.min() < 0:
        raise ValueError("k_occurrence: expected finite non-negative counts")
    if array.sum() == 0:
        raise ValueError("k_occurrence: expected at least one occurrence, got all zeros")
    return array.astype(np.float64)


def skewness(k_occurrence: ArrayLike) -> float:
    """Population skewness of :math:`N_k` (NaN when every item occurs equally often)."""
    n_k = _occurrence(k_occurrence)
    if (n_k == n_k[0]).all():
        return float("nan")
    centred = n_k - n_k.mean()
    m2 = float(np.mean(centred**2))
    m3 = float(np.mean(centred**3))
    return m3 / m2**1.5


def antihub_share(k_occurrence: ArrayLike) -> float:
    """Share of gallery items that occur in no top-k list."""
    n_k = _occurrence(k_occurrence)
    return float((n_k == 0).mean())


def robin_hood_index(k_occurrence: ArrayLike) -> float:
    """Robin Hood (Hoover) index of :math:`N_k`: 0 = perfectly even, → 1 = one item takes all."""
    n_k = _occurrence(k_occurrence)
    return float(0.5 * np.abs(n_k - n_k.mean()).sum() / n_k.sum())


def hub_occurrence(k_occurrence: ArrayLike, factor: float = HUB_FACTOR) -> float:
    """Share of all top-k slots occupied by hubs (items with :math:`N_k \\ge` factor · mean)."""
    n_k = _occurrence(k_occurrence)
    if not (isinstance(factor, int | float) and math.isfinite(factor) and factor > 0):
        raise ValueError(f"factor: expected a positive number, got {factor!r}")
    hubs = n_k >= factor * n_k.mean()
    return float(n_k[hubs].sum() / n_k.sum())


@dataclass(frozen=True)
class HubnessNull:
    """Hubness of a uniformly random retriever: ``skewness`` and ``antihub_share`` of
    :math:`\\mathrm{Binomial}(|Q|, k/N)` occurrences, and ``lam`` = :math:`k|Q|/N`."""

    skewness: float
    antihub_share: float
    lam: float


def random_null(k: int, n_queries: int, n_gallery: int) -> HubnessNull:
    """The random-retriever null (formulas in the module docstring); ``k`` is capped at
    ``n_gallery``. Skewness is NaN when ``k = N`` (every item in every list)."""
    n_gallery = check_positive_int(n_gallery, "n_gallery")
    k = min(check_positive_int(k, "k"), n_gallery)
    n_queries = check_positive_int(n_queries, "n_queries")
    p = k / n_gallery
    variance = n_queries * p * (1.0 - p)
    skew = (1.0 - 2.0 * p) / math.sqrt(variance) if variance > 0 else float("nan")
    return HubnessNull(
        skewness=skew, antihub_share=(1.0 - p) ** n_queries, lam=k * n_queries / n_gallery
    )
