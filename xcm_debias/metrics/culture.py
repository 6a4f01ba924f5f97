r"""Cultural tugging in text→image retrieval (3XCM's association bias).

A query in language ``l`` has an *own culture* ``c(l)`` (``culture_of_language``). Measures, with
:math:`t_q` the culture of query ``q``'s top-1 image and :math:`\mathcal R_q` its relevant images:

* **own-culture@1** per query :math:`\mathbb 1[t_q = c(l_q)]`; per language, its mean.
* **chance** per query :math:`|\{g \in \mathcal R_q : \mathrm{culture}(g) = c(l_q)\}| /
  |\mathcal R_q|` — the own-culture@1 of a retriever that always finds the content and picks
  uniformly among its relevant images (culture-blind); per language, its mean.
* **excess** :math:`\frac{1}{|L|}\sum_{l \in L} (\mathrm{own}_l - \mathrm{chance}_l)` over the
  languages that have an own culture: 0 for a culture-blind retriever, > 0 when culture tugs.
* **hits / misses** — own-culture@1 among the queries whose top-1 is relevant (hits) and among
  those whose top-1 is not (misses). Misses pulled to the query's own culture are the purest
  tugging signal: the content was lost, the culture was not.

Source: Saengsukhiran et al., "Evaluating Perspectival Biases in Cross-Modal Retrieval", arXiv
2510.26861 (the tugging effect; its self-preference score compares own-culture retrieval with
the other cultures).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from xcm_debias.metrics._checks import ArrayLike, as_labels, as_mask, as_values
from xcm_debias.metrics.groups import group_mean
from xcm_debias.metrics.relevance import relevant_pairs


def _own(own_cultures: ArrayLike, length: int | None = None) -> np.ndarray:
    own = as_labels(own_cultures, "own_cultures", length)
    if (own == "").any():
        raise ValueError(
            f"own_cultures: expected an own culture for every query, got {int((own == '').sum())} "
            "without one (leave queries whose language has no culture out)"
        )
    return own


def own_culture_at_1(top1_cultures: ArrayLike, own_cultures: ArrayLike) -> np.ndarray:
    """Per query, 1.0 when the top-1 image's culture is the query's own culture (float ``[Q]``)."""
    top1 = as_labels(top1_cultures, "top1_cultures")
    own = _own(own_cultures, len(top1))
    return (top1 == own).astype(np.float64)


def own_culture_chance(
    query_items: ArrayLike,
    own_cultures: ArrayLike,
    gallery_items: ArrayLike,
    gallery_cultures: ArrayLike,
) -> np.ndarray:
    """Per query, the share of its relevant images carrying its own culture (float ``[Q]``)."""
    q_items = as_labels(query_items, "query_items")
    own = _own(own_cultures, len(q_items))
    g_items = as_labels(gallery_items, "gallery_items")
    g_cultures = as_labels(gallery_cultures, "gallery_cultures", len(g_items))
    q_rows, g_rows = relevant_pairs(q_items, g_items)
    n_relevant = np.bincount(q_rows, minlength=len(q_items))
    if (n_relevant == 0).any():
        raise ValueError(
            f"query_items: expected at least one relevant gallery row per query, got "
            f"{int((n_relevant == 0).sum())} queries with none"
        )
    own_pairs = (g_cultures[g_rows] == own[q_rows]).astype(np.float64)
    return np.bincount(q_rows, weights=own_pairs, minlength=len(q_items)) / n_relevant


def own_culture_excess(own: Mapping[str, float], chance: Mapping[str, float]) -> float:
    """Mean over languages of own-culture@1 − chance (both per language, same keys)."""
    if not isinstance(own, Mapping) or not isinstance(chance, Mapping):
        raise TypeError("own, chance: expected mappings language -> value")
    if set(own) != set(chance):
        raise ValueError(
            f"chance: expected the languages of own {sorted(own)}, got {sorted(chance)}"
        )
    if not own:
        raise ValueError("own: expected at least one language, got none")
    keys = sorted(own)
    diff = as_values([own[key] for key in keys], "own") - as_values(
        [chance[key] for key in keys], "chance"
    )
    return float(diff.mean())


def by_outcome(
    values: ArrayLike, groups: ArrayLike, hit: ArrayLike
) -> tuple[dict[str, float], dict[str, float]]:
    """Per-group means of ``values`` among hits and among misses.

    Returns ``(hits, misses)``; every group is listed in both, NaN where it has no such query.
    """
    v = as_values(values, "values")
    g = as_labels(groups, "groups", len(v))
    h = as_mask(hit, "hit", len(v))
    names = sorted(set(g.tolist()) - {""})
    hits = dict.fromkeys(names, float("nan"))
    misses = dict.fromkeys(names, float("nan"))
    if h.any():
        hits.update(group_mean(v[h], g[h]))
    if (~h).any():
        misses.update(group_mean(v[~h], g[~h]))
    return hits, misses
