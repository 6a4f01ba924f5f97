r"""Equal exposure for near-tied gallery groups by seeded per-query tie-breaking (ExposureShuffle).

Image→text over a multilingual caption gallery: once the encoder's language preference is
removed (alignment, :class:`~xcm_debias.scoring.GroupBalance`), an image's faithful captions in
the K languages are near ties, and which language wins top-1 turns on tiny item-level
residuals. All images of one item then tend to pick the *same* language, so the languages'
share of top-1 results stays far from the gallery mix although no language is preferred on
average — and offsets fitted per language cannot fix an item-level effect.

ExposureShuffle adds, per query ``q`` and gallery group ``b`` (the caption language), a bounded
pseudo-random bonus

.. math::

    \operatorname{score}(q, g) = s(q, g) + ε\, κ_{q, B(g)}, \qquad
    κ_{q, b} = ξ_{q, b}^{1 / w_b}, \quad ξ_{q, b} \sim U(0, 1) \text{ i.i.d.},

with ``w_b`` the group's target share (its share of the gallery bank). ``κ`` are the keys of
weighted random sampling (Efraimidis & Spirakis 2006): among groups whose best rows tie exactly,
group ``b`` wins with probability ``w_b / Σ w``, so over many queries every language is exposed
in proportion to its gallery share — the stochastic-ranking view of fairness of exposure (Singh
& Joachims 2018; Diaz et al. 2020), made deterministic: ``ξ`` is a hash of the leading bits of
the query's embedding and ``seed``, so the same query always gets the same ranking — on any
machine: the hash reads each coordinate's sign, exponent and first mantissa bits only
(:data:`HASHED_BITS`), which a last-bit difference between BLAS libraries almost never moves.

The bonus lies in ``[0, ε]``: a row can only overtake rows at most ``ε`` above it. ``ε`` (the
tie width, in score units) is ``width``, or with ``width="auto"`` the ``tie_quantile`` quantile,
over the calibration bank queries, of the spread ``max − min`` of their scores to their relevant
gallery rows (same ``item``) — how far apart the faithful captions of one image lie. Score units
include earlier stages' offsets (place it last).

Offset form: ``v(g) = onehot(B(g))``, ``u(q) = ε κ_{q, :}``; ``scale = 1``. A gallery row whose
group was inferred (:mod:`xcm_debias.soft_labels`) takes its posterior for ``v(g)``: the bonus
``ε Σ_b p_b(g) κ_{q, b}`` is the posterior-weighted one.

References:
    P. S. Efraimidis, P. G. Spirakis, "Weighted random sampling with a reservoir", Information
    Processing Letters 97(5), 2006.
    A. Singh, T. Joachims, "Fairness of Exposure in Rankings", KDD 2018.
    F. Diaz, B. Mitra, M. D. Ekstrand, A. J. Biega, B. Carterette, "Evaluating Stochastic
    Rankings with Expected Exposure", CIKM 2020.

Needs the gallery group label (``language`` for captions) on gallery rows at fit (carried or
inferred at search), and the ``item`` labels of the calibration banks for ``width="auto"``; a
group unseen in calibration gets no bonus (zero weights) and an ``UnseenGroupWarning``. When no
calibration gallery row carries the label at all, the stage is skipped (a no-op, with
``fitted_meta["skipped"]`` saying why and a UserWarning).
"""

from __future__ import annotations

import numpy as np
import torch

from xcm_debias._validation import check_fraction
from xcm_debias.scoring._groups import (
    absent_label,
    group_labels,
    group_weights,
    skipped_stage,
)
from xcm_debias.scoring.base import (
    GalleryColumns,
    ScoredRows,
    ScoreNormalizer,
    check_positive_float,
)

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
#: leading bits of each float32 coordinate the query hash reads (sign, 8 exponent bits and 3
#: mantissa bits): a value moves them only when it crosses one of 8 steps per power of two,
#: so a relative change of 1e-7 (a last-bit rounding difference) reshuffles a 512-d query
#: with probability about 512 · 8 · 1e-7 / ln 2 ≈ 5e-4, where hashing every bit would
#: reshuffle nearly every query.
HASHED_BITS = 12
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class ExposureShuffle(ScoreNormalizer):
    """Per-query seeded bonus in ``[0, ε]`` per gallery group: near ties split by target share.

    Args:
        width: the tie width ``ε`` in score units (a positive float), or ``"auto"``: the
            ``tie_quantile`` quantile of the calibration queries' relevant-row score spread.
        tie_quantile: quantile in ``(0, 1]`` used by ``width="auto"``.
        gallery_group: label naming the gallery groups whose exposure is balanced.
        seed: seed of the per-query hash (another seed, another deterministic shuffle).
        block_size: kept for the common interface (the fit touches relevant pairs only).

    Needs ``gallery_group`` labels on gallery rows; ``item`` labels on the banks for
    ``width="auto"``.
    """

    def __init__(
        self,
        width: float | str = "auto",
        tie_quantile: float = 1.0,
        gallery_group: str = "language",
        seed: int = 0,
        block_size: int = 4096,
    ) -> None:
        super().__init__()
        self.width = width
        self.tie_quantile = tie_quantile
        self.gallery_group = gallery_group
        self.seed = seed
        self.block_size = block_size

    @property
    def scale(self) -> float:
        return 1.0

    def _check_params(self) -> None:
        super()._check_params()
        if self.width != "auto":
            self.width = check_positive_float(self.width, "width")
        self.tie_quantile = check_fraction(self.tie_quantile, "tie_quantile", open_high=False)
        if not isinstance(self.gallery_group, str) or not self.gallery_group:
            raise TypeError(f"gallery_group: expected a label name, got {self.gallery_group!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise TypeError(f"seed: expected an int, got {self.seed!r}")
        if self.seed < 0:
            raise ValueError(f"seed: expected an int >= 0, got {self.seed}")
        self.seed = int(self.seed)

    # ------------------------------------------------------------------ fit
    def _fit(self, query_bank: ScoredRows, gallery_bank: ScoredRows) -> None:
        if absent_label(gallery_bank.data, self.gallery_group):
            self.set_state("shares", torch.zeros(0))
            self.fitted_meta.update(
                gallery_group=self.gallery_group,
                gallery_groups=[],
                width=0.0,
                skipped=skipped_stage("ExposureShuffle", self.gallery_group, gallery_bank.data),
            )
            return
        labels = group_labels(
            gallery_bank.data, self.gallery_group, "ExposureShuffle", "gallery_bank"
        )
        names, idx = np.unique(labels, return_inverse=True)
        shares = np.bincount(idx, minlength=len(names)) / len(idx)
        if self.width == "auto":
            spreads = relevant_spreads(query_bank, gallery_bank)
            if len(spreads) == 0:
                raise ValueError(
                    "ExposureShuffle(width='auto'): no calibration query has two or more "
                    "relevant gallery rows (same item); pass width=<float> instead"
                )
            width = float(np.quantile(spreads, self.tie_quantile))
        else:
            width = float(self.width)
        self.set_state("shares", torch.from_numpy(shares).float())
        self.fitted_meta.update(
            gallery_group=self.gallery_group, gallery_groups=names.tolist(), width=width
        )

    # ---------------------------------------------------------------- apply
    def _gallery_columns(self, gallery: ScoredRows) -> GalleryColumns:
        if "skipped" in self.fitted_meta:
            return GalleryColumns(columns=torch.zeros(len(gallery.data), 0))
        names = self.fitted_meta["gallery_groups"]
        weights = group_weights(
            gallery.data, self.gallery_group, names, "ExposureShuffle", "gallery"
        )
        return GalleryColumns(columns=weights)

    def _query_columns(
        self, queries: ScoredRows, gallery_columns: GalleryColumns, top1: torch.Tensor | None
    ) -> torch.Tensor:
        uniform = row_uniforms(queries.plain, len(self.fitted_meta["gallery_groups"]), self.seed)
        keys = uniform ** (1.0 / self.shares.double())[None, :]
        return (self.fitted_meta["width"] * keys).float()


def row_uniforms(rows: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``[len(rows), n]`` float64 in ``(0, 1)``: a hash of each row's leading float32 bits and
    ``seed``.

    splitmix64 (Steele, Lea & Flood 2014) of every coordinate's leading :data:`HASHED_BITS`
    bits, summed mod 2^64 with the coordinate's position mixed in, gives a row hash;
    splitmix64 of ``hash + (b + 1)·φ`` gives column ``b``. Equal rows get equal values, and so
    do rows that differ only below the hashed bits (last-bit rounding).
    """
    words = np.ascontiguousarray(rows.detach().float().cpu().numpy()).view(np.uint32)
    bits = words >> np.uint32(32 - HASHED_BITS)
    positions = np.arange(bits.shape[1], dtype=np.uint64) * _GOLDEN
    with np.errstate(over="ignore"):
        row_hash = _splitmix64(bits.astype(np.uint64) ^ positions[None, :]).sum(
            axis=1, dtype=np.uint64
        )
        row_hash = _splitmix64(row_hash ^ np.uint64(seed))
        columns = np.arange(1, n + 1, dtype=np.uint64) * _GOLDEN
        mixed = _splitmix64(row_hash[:, None] + columns[None, :])
    # top 53 bits → (0, 1), never exactly 0 (a 0 key would ignore the group's share)
    return torch.from_numpy(((mixed >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (x + _GOLDEN) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def relevant_spreads(query_bank: ScoredRows, gallery_bank: ScoredRows) -> np.ndarray:
    """Per bank query with ≥ 2 relevant gallery rows: ``max − min`` of its scores to them.

    Scores are ``[q, u_prev]·[g, v_prev]`` (earlier stages included); only relevant pairs
    (same ``item``) are formed.
    """
    q_item = query_bank.data.item.astype(str)
    g_item = gallery_bank.data.item.astype(str)
    order = np.argsort(g_item, kind="stable")
    sorted_items = g_item[order]
    start = np.searchsorted(sorted_items, q_item, side="left")
    stop = np.searchsorted(sorted_items, q_item, side="right")
    count = stop - start
    keep = np.flatnonzero(count >= 2)
    if len(keep) == 0:
        return np.zeros(0)
    query_of_pair = np.repeat(keep, count[keep])
    within = np.arange(len(query_of_pair)) - np.repeat(
        np.cumsum(count[keep]) - count[keep], count[keep]
    )
    gallery_of_pair = order[np.repeat(start[keep], count[keep]) + within]
    q = query_bank.augmented[torch.from_numpy(query_of_pair)]
    g = gallery_bank.augmented[torch.from_numpy(gallery_of_pair)]
    scores = (q * g).sum(dim=1).double().numpy()
    pair_group = np.repeat(np.arange(len(keep)), count[keep])
    high = np.full(len(keep), -np.inf)
    low = np.full(len(keep), np.inf)
    np.maximum.at(high, pair_group, scores)
    np.minimum.at(low, pair_group, scores)
    return high - low
