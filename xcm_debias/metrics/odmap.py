r"""ODmAP-style@k: mAP@k on the queries that break a training co-occurrence.

Kim, Koepke, Schmid & Akata, "Exposing and Mitigating Spurious Correlations for Cross-Modal
Retrieval", CVPR Workshops 2023 (ExplainableML/Spurious_CM_Retrieval, which holds no metric code)
introduce ODmAP@k: retrieval mAP@k on test data in which objects that co-occur in training are
shown apart, so a model that retrieves by co-occurrence loses. The paper builds that test data
by editing images and captions; we measure on given data, hence "ODmAP-style".

**Operational definition.** A pair of objects ``(a, b)`` *co-occurs in training* when the
training data shows ``a`` only with ``b`` and ``b`` only with ``a``. A test query is
*decorrelated* when its content shows exactly one object of such a pair:
:math:`|\{a, b\} \cap O(q)| = 1`, with :math:`O(q)` its objects (the ``objects`` column, names
joined by ``;``). Then

.. math:: \mathrm{ODmAP@k} = \frac{1}{|D|}\sum_{q \in D} \mathrm{AP@k}(q),

with AP@k as INQUIRE (:func:`xcm_debias.metrics.recall.average_precision_at_k`) and ``D`` the
decorrelated queries. The training pairs are not visible in a test corpus, so they are given:
either as ``cooccurring_pairs`` (with an ``objects`` column), or already resolved as a boolean
``decorrelated`` column per row (what the embedded world provides).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xcm_debias.metrics._checks import ArrayLike, as_labels, as_mask, as_values

OBJECT_SEPARATOR = ";"


def decorrelated_by_objects(
    objects: ArrayLike, cooccurring_pairs: Sequence[tuple[str, str]]
) -> np.ndarray:
    """Boolean ``[Q]``: the query shows exactly one object of some co-occurring pair.

    ``objects`` holds each query's object names joined by ``;`` (``"cross;star"``).
    """
    names = as_labels(objects, "objects")
    if isinstance(cooccurring_pairs, str) or not isinstance(cooccurring_pairs, Sequence):
        raise TypeError(
            "cooccurring_pairs: expected a sequence of (object, object) pairs, "
            f"got {type(cooccurring_pairs).__name__}"
        )
    if not cooccurring_pairs:
        raise ValueError("cooccurring_pairs: expected at least one pair, got none")
    pairs = []
    for i, pair in enumerate(cooccurring_pairs):
        if (
            isinstance(pair, str)
            or not isinstance(pair, Sequence)
            or len(pair) != 2
            or not all(isinstance(o, str) and o for o in pair)
            or pair[0] == pair[1]
        ):
            raise ValueError(
                f"cooccurring_pairs[{i}]: expected two different object names, got {pair!r}"
            )
        pairs.append((pair[0], pair[1]))
    sets = [set(filter(None, s.split(OBJECT_SEPARATOR))) for s in names.tolist()]
    return np.array(
        [any((a in shown) != (b in shown) for a, b in pairs) for shown in sets], dtype=bool
    )


def odmap_at_k(average_precision: ArrayLike, decorrelated: ArrayLike) -> float:
    """Mean AP@k over the decorrelated queries (see the module docstring)."""
    ap = as_values(average_precision, "average_precision")
    mask = as_mask(decorrelated, "decorrelated", len(ap))
    if not mask.any():
        raise ValueError(
            "decorrelated: expected at least one decorrelated query, got none "
            "(no query shows one object of a co-occurring pair without the other)"
        )
    return float(ap[mask].mean())
