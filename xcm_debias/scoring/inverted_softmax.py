r"""Inverted softmax over a query bank (Smith et al., ICLR 2017).

.. math::

    \tilde s(q, g) = \frac{\exp(\beta\, s(q, g))}{Z(g)}, \qquad
    Z(g) = \sum_{\hat q \in B_q} \exp(\beta\, s(\hat q, g)),

so for a fixed query the ranking is by ``β s(q, g) − log Z(g)``: a per-gallery-item offset.
A gallery item close to many bank queries (a hub) has a large ``Z(g)`` and is pushed down.

Reference: S. L. Smith, D. H. P. Turban, S. Hamblin, N. Y. Hammerla, "Offline bilingual word
vectors, orthogonal transformations and the inverted softmax", ICLR 2017. The query bank of
QB-Norm (Bogolin et al., CVPR 2022) replaces Smith et al.'s test queries: calibration queries
only, never test rows.
"""

from __future__ import annotations

import torch

from xcm_debias.scoring._blockwise import logsumexp_scores
from xcm_debias.scoring.base import (
    GalleryColumns,
    ScoredRows,
    ScoreNormalizer,
    check_positive_float,
)


class InvertedSoftmax(ScoreNormalizer):
    """Inverted softmax: ``score(q, g) = s(q, g) − log Z(g) / β`` (``Z`` over the query bank).

    Offset form: ``v(g) = −log Z(g)/β``, ``u(q) = 1``; ``scale = β``. ``Z(g)`` for a test
    gallery item sums over the calibration query bank, blockwise (streaming ``logsumexp``).

    Args:
        beta: inverse temperature β (QB-Norm's default 20).
        block_size: tile edge of the blockwise products.

    Needs no labels.
    """

    def __init__(self, beta: float = 20.0, block_size: int = 4096) -> None:
        super().__init__()
        self.beta = beta
        self.block_size = block_size

    @property
    def scale(self) -> float:
        return float(self.beta)

    def _check_params(self) -> None:
        super()._check_params()
        self.beta = check_positive_float(self.beta, "beta")

    def _fit(self, query_bank: ScoredRows, gallery_bank: ScoredRows) -> None:
        self.set_state("query_bank", query_bank.augmented)
        self.fitted_meta["query_bank_size"] = len(query_bank.data)

    def _log_z(self, gallery: ScoredRows) -> torch.Tensor:
        """``log Z(g) = log Σ_{q̂ ∈ B_q} exp(β s(q̂, g))`` for every gallery row."""
        return logsumexp_scores(
            gallery.augmented, self.query_bank, self.beta, None, self.block_size
        )

    def _gallery_columns(self, gallery: ScoredRows) -> GalleryColumns:
        return GalleryColumns(columns=(-self._log_z(gallery) / self.beta)[:, None])
