r"""Per-group breakdowns of per-query values, and the spread across groups.

A breakdown is the mean of a per-query value over the queries of each group (a query language,
the culture of a query image): :math:`\bar v_g = \frac{1}{|Q_g|}\sum_{q \in Q_g} v_q`. Rows whose
group label is ``""`` (absent) belong to no group. The spread summarises how unequal the groups
are (per-language fairness beyond the mean: worst group, best group, best − worst gap, and the
population standard deviation across groups).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from xcm_debias.metrics._checks import ArrayLike, as_labels, as_values


def group_mean(values: ArrayLike, groups: ArrayLike) -> dict[str, float]:
    """Mean of ``values`` over the rows of each non-empty group label, keys sorted."""
    v = as_values(values, "values")
    g = as_labels(groups, "groups", len(v))
    names, inverse = np.unique(g, return_inverse=True)
    sums = np.bincount(inverse, weights=v, minlength=len(names))
    counts = np.bincount(inverse, minlength=len(names))
    return {str(n): float(s / c) for n, s, c in zip(names, sums, counts, strict=True) if n != ""}


def group_share(categories: ArrayLike, groups: ArrayLike) -> dict[str, dict[str, float]]:
    """For each group, the share of its rows falling in each category.

    ``share[g][c] = |{q ∈ Q_g : category(q) = c}| / |Q_g|``; every category seen anywhere is
    listed for every group (0 when absent); rows of category ``""`` count in ``|Q_g|`` but get
    no column (so a row may sum to less than 1).
    """
    g = as_labels(groups, "groups")
    c = as_labels(categories, "categories", len(g))
    if len(g) == 0:
        raise ValueError("groups: expected at least one row, got none")
    columns = sorted(set(c.tolist()) - {""})
    out: dict[str, dict[str, float]] = {}
    for name in sorted(set(g.tolist()) - {""}):
        members = c[g == name]
        out[name] = {col: float((members == col).mean()) for col in columns}
    return out


@dataclass(frozen=True)
class GroupSpread:
    """Spread of per-group values: ``worst`` (min), ``best`` (max), ``gap`` = best − worst,
    ``std`` = population standard deviation (ddof = 0) across groups."""

    worst: float
    best: float
    gap: float
    std: float


def spread(per_group: Mapping[str, float]) -> GroupSpread:
    r"""Spread of per-group values :math:`\{v_g\}`: min, max, max − min and
    :math:`\sqrt{\frac1G\sum_g (v_g - \bar v)^2}`."""
    if not isinstance(per_group, Mapping):
        raise TypeError(
            f"per_group: expected a mapping group -> value, got {type(per_group).__name__}"
        )
    if not per_group:
        raise ValueError("per_group: expected at least one group, got none")
    values = as_values(list(per_group.values()), "per_group values")
    return GroupSpread(
        worst=float(values.min()),
        best=float(values.max()),
        gap=float(values.max() - values.min()),
        std=float(values.std()),
    )
