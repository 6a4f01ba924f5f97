r"""Cross-language consistency: Mean Rank Variance (MRV).

Nie et al., "Improving the Consistency in Cross-Lingual Cross-Modal Retrieval with 1-to-K
Contrastive Learning", KDD 2024 (code: BUAADreamer/CCRK, ``analysis_ranks``). For a group ``u``
(an item queried in K languages, or an image query ranked in K language galleries) with ranks
:math:`r_{u,l}` of the correct counterpart in each language ``l``:

.. math:: \mathrm{MRV} = \frac{1}{|U|}\sum_{u \in U} \operatorname{std}_l(r_{u,l}),
          \qquad \mathrm{MRV_{var}} = \frac{1}{|U|}\sum_{u \in U} \operatorname{var}_l(r_{u,l}).

The reference code takes the standard deviation although the name says variance: ``mrv`` is the
standard deviation (as the code), ``mrv_var`` the variance; both population (ddof = 0). 0 means
every language ranks the counterpart alike.

Operational details: a group with several rows in one language uses that language's mean rank;
only groups seen in at least two languages count (one language has no spread).
"""

from __future__ import annotations

import numpy as np

from xcm_debias.metrics._checks import ArrayLike, as_labels, as_ranks


def rank_spread_per_group(
    ranks: ArrayLike, groups: ArrayLike, languages: ArrayLike, statistic: str = "std"
) -> dict[str, float]:
    """Per group, the spread (``"std"`` or ``"var"``, ddof = 0) of its per-language ranks.

    Groups with fewer than two languages are left out. Rows with an empty group or language
    label are ignored.
    """
    r = as_ranks(ranks, "ranks").astype(np.float64)
    g = as_labels(groups, "groups", len(r))
    lang = as_labels(languages, "languages", len(r))
    if statistic not in ("std", "var"):
        raise ValueError(f"statistic: expected 'std' or 'var', got {statistic!r}")
    keep = (g != "") & (lang != "")
    r, g, lang = r[keep], g[keep], lang[keep]
    group_names, group_of_row = np.unique(g, return_inverse=True)
    _, lang_of_row = np.unique(lang, return_inverse=True)
    n_codes = int(lang_of_row.max(initial=0)) + 1
    # mean rank per (group, language) cell
    cells, cell_of_row = np.unique(group_of_row * n_codes + lang_of_row, return_inverse=True)
    cell_rank = np.bincount(cell_of_row, weights=r) / np.bincount(cell_of_row)
    group_of_cell = cells // n_codes
    n_lang = np.bincount(group_of_cell, minlength=len(group_names))  # >= 1 for every group
    mean = np.bincount(group_of_cell, weights=cell_rank, minlength=len(group_names)) / n_lang
    squares = (cell_rank - mean[group_of_cell]) ** 2
    var = np.bincount(group_of_cell, weights=squares, minlength=len(group_names)) / n_lang
    spread = var if statistic == "var" else np.sqrt(var)
    return {
        str(name): float(s)
        for name, s, n in zip(group_names, spread, n_lang, strict=True)
        if n >= 2
    }


def _mean_spread(
    ranks: ArrayLike, groups: ArrayLike, languages: ArrayLike, statistic: str
) -> float:
    per_group = rank_spread_per_group(ranks, groups, languages, statistic)
    if not per_group:
        raise ValueError(
            "groups: expected at least one group ranked in two or more languages, got none "
            "(MRV needs each item in several languages)"
        )
    return float(np.mean(list(per_group.values())))


def mrv(ranks: ArrayLike, groups: ArrayLike, languages: ArrayLike) -> float:
    """Mean Rank Variance as in the CCRK code: the mean over groups of the *standard deviation*
    of the per-language ranks (see the module docstring)."""
    return _mean_spread(ranks, groups, languages, "std")


def mrv_var(ranks: ArrayLike, groups: ArrayLike, languages: ArrayLike) -> float:
    """Mean Rank Variance by its name: the mean over groups of the *variance* of the
    per-language ranks."""
    return _mean_spread(ranks, groups, languages, "var")
