r"""Language prevalence in image→text retrieval (3XCM's prevalence bias).

Over a gallery holding the same captions in K languages, a language-blind retriever puts each
language in the top k about as often as the language occurs in the gallery. Measures:

* **language share@k** — :math:`s_l = \frac{1}{|Q|k}\sum_q \sum_{i \le k} \mathbb 1[\mathrm{lang}(g_{q,i}) = l]`,
  against the gallery share :math:`\pi_l = |\{g : \mathrm{lang}(g) = l\}| / N`.
* **language TV@k** — total-variation distance :math:`\frac12\sum_l |s_l - \pi_l|` (0 = no
  prevalence; 1 = disjoint supports, the bound).
* **faithfulness loss@k** — how often wrong-item captions fill the top k ahead of every
  right-item caption: :math:`\frac{1}{|Q|}\sum_q \mathbb 1[r_q > k]` (at k = 1: a wrong caption
  outranks every right one); split by the language of the unfaithful top-1 caption, it shows
  *which* language wins when the retriever is unfaithful.
* **LBKL@k / DLBKL@k** (Saengsukhiran et al., "Evaluating Perspectival Biases in Cross-Modal
  Retrieval", arXiv 2510.26861, 3XCM): per query, with :math:`p_q` the share of low-resource
  languages in its top k, :math:`\sum_{c \in \{low, other\}} \tfrac12 \ln\frac{1/2}{\max(p_{q,c},
  10^{-9})}`, averaged over queries. DLBKL weighs slot ``i`` by the DCG discount
  :math:`1/\log_2(i+1)` when forming :math:`p_q` (our reading of "rank-discounted"). Reported for
  comparability only: its null is not 0 (LBKL@1 is the constant 9.668 for every retriever,
  since :math:`p_q \in \{0, 1\}`), so gate on language TV, whose null is 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from xcm_debias._validation import check_positive_int
from xcm_debias.metrics._checks import ArrayLike, as_labels, as_numpy, as_relevance

LBKL_FLOOR = 1e-9


def _retrieved_languages(values: ArrayLike, k: int) -> np.ndarray:
    array = as_numpy(values, "retrieved_languages")
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(
            f"retrieved_languages: expected a non-empty [Q, k] label matrix, got shape {array.shape}"
        )
    return array.astype(np.str_)[:, :k]


def language_share_at_k(retrieved_languages: ArrayLike, k: int) -> dict[str, float]:
    """Share of each language among all top-``k`` slots (keys sorted; ``""`` not listed)."""
    k = check_positive_int(k, "k")
    top = _retrieved_languages(retrieved_languages, k).reshape(-1)
    names, counts = np.unique(top, return_counts=True)
    return {str(n): float(c / top.size) for n, c in zip(names, counts, strict=True) if n != ""}


def gallery_language_share(gallery_languages: ArrayLike) -> dict[str, float]:
    """Share of each language among the gallery rows (the language-blind expectation)."""
    lang = as_labels(gallery_languages, "gallery_languages")
    if len(lang) == 0:
        raise ValueError("gallery_languages: expected at least one gallery row, got none")
    names, counts = np.unique(lang, return_counts=True)
    return {str(n): float(c / len(lang)) for n, c in zip(names, counts, strict=True) if n != ""}


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    r"""Total-variation distance :math:`\frac12\sum_l |p_l - q_l|` over the union of keys
    (a missing key counts as 0)."""
    for name, dist in (("p", p), ("q", q)):
        if not isinstance(dist, Mapping):
            raise TypeError(
                f"{name}: expected a mapping language -> share, got {type(dist).__name__}"
            )
        bad = [v for v in dist.values() if not np.isfinite(v) or v < 0]
        if bad:
            raise ValueError(f"{name}: expected finite non-negative shares, got {bad[:3]}")
    keys = sorted(set(p) | set(q))  # a fixed order: the float sum is the same on every run
    return float(0.5 * sum(abs(p.get(key, 0.0) - q.get(key, 0.0)) for key in keys))


def faithfulness_loss(relevance: ArrayLike, k: int) -> float:
    """Share of queries whose top ``k`` holds no right-item row (wrong rows outrank every
    right one); ``relevance`` is the boolean ``[Q, k']`` matrix of the retrieved slots."""
    k = check_positive_int(k, "k")
    rel = as_relevance(relevance, "relevance")
    return float((~rel[:, :k].any(axis=1)).mean())


def unfaithful_top1_share(relevance: ArrayLike, retrieved_languages: ArrayLike) -> dict[str, float]:
    """Per language ``l``: share of queries whose top-1 is a wrong-item caption in ``l``.

    Sums over languages to :func:`faithfulness_loss` at ``k = 1`` (unlabelled captions aside).
    Every language seen in the top-1 slots is listed.
    """
    rel = as_relevance(relevance, "relevance")
    top1 = _retrieved_languages(retrieved_languages, 1)[:, 0]
    if len(top1) != rel.shape[0]:
        raise ValueError(
            f"retrieved_languages: expected {rel.shape[0]} rows (as relevance), got {len(top1)}"
        )
    wrong = ~rel[:, 0]
    languages = sorted(set(top1.tolist()) - {""})
    return {str(lang): float((wrong & (top1 == lang)).mean()) for lang in languages}


def lbkl_at_k(
    retrieved_languages: ArrayLike,
    low_resource: Sequence[str],
    k: int,
    discounted: bool = False,
) -> float:
    """3XCM's LBKL@k (``discounted=False``) or DLBKL@k (``discounted=True``), mean over queries
    (formula in the module docstring)."""
    k = check_positive_int(k, "k")
    top = _retrieved_languages(retrieved_languages, k)
    if isinstance(low_resource, str) or not isinstance(low_resource, Sequence | set | frozenset):
        raise TypeError(
            f"low_resource: expected a sequence of language codes, got {type(low_resource).__name__}"
        )
    low = np.array(sorted(set(low_resource)), dtype=np.str_)
    if low.size == 0:
        raise ValueError("low_resource: expected at least one low-resource language, got none")
    is_low = np.isin(top, low).astype(np.float64)
    weights = 1.0 / np.log2(np.arange(2, top.shape[1] + 2)) if discounted else np.ones(top.shape[1])
    p_low = (is_low * weights).sum(axis=1) / weights.sum()
    per_query = 0.5 * np.log(0.5 / np.maximum(p_low, LBKL_FLOOR)) + 0.5 * np.log(
        0.5 / np.maximum(1.0 - p_low, LBKL_FLOOR)
    )
    return float(per_query.mean())
