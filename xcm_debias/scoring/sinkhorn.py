r"""Sinkhorn normalisation of bank scores, as in UCoFiA (Wang et al., ICCV 2023).

Sinkhorn–Knopp scaling of ``K = exp(β S)``, ``S`` the scores of the calibration *bank* queries
``B_q`` (rows, marginal ``1/|B_q|`` each) against the gallery (columns, marginal ``1/N`` each):

.. math::

    b^{(0)} = 1 / K^\top \mathbf 1, \qquad
    a^{(t)} = \tfrac{1}{|B_q|} / (K b^{(t-1)}), \qquad
    b^{(t)} = \tfrac{1}{N} / (K^\top a^{(t)}), \quad t = 1..T,

and the test scores become ``β s(q, g) + log b(g)``: a per-gallery-item bias, so an offset
(``v(g) = log b(g)/β``, ``u(q) = 1``, ``scale = β``). With ``T = 0`` it is the inverted softmax;
more iterations also balance how much each bank query is matched (an iterated inverted
softmax). Bank queries only: the test queries are never used (not transductive). Every sum is
a blockwise ``logsumexp`` in the log domain.

Reference: Z. Wang, Y.-L. Sung, F. Cheng, G. Bertasius, M. Bansal, "Unified Coarse-to-Fine
Alignment for Video-Text Retrieval", ICCV 2023 (code: Ziyang412/UCoFiA, ``sinkhorn_knopp`` with
4 iterations on the training-text × test-video logits).
"""

from __future__ import annotations

import math

import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.scoring._blockwise import logsumexp_scores
from xcm_debias.scoring.base import (
    GalleryColumns,
    ScoredRows,
    ScoreNormalizer,
    check_positive_float,
)


class SinkhornNorm(ScoreNormalizer):
    """Gallery bias from Sinkhorn–Knopp on bank-query × gallery scores.

    ``score(q, g) = s(q, g) + log b(g) / β``, ``b`` the column scaling after ``n_iters``
    Sinkhorn iterations (see the module docstring).

    Args:
        beta: inverse temperature β of ``K = exp(β S)``.
        n_iters: Sinkhorn iterations after the inverted-softmax start (UCoFiA: 4; 0 = the
            inverted softmax).
        block_size: tile edge of the blockwise products.

    Needs no labels.
    """

    def __init__(self, beta: float = 20.0, n_iters: int = 4, block_size: int = 4096) -> None:
        super().__init__()
        self.beta = beta
        self.n_iters = n_iters
        self.block_size = block_size

    @property
    def scale(self) -> float:
        return float(self.beta)

    def _check_params(self) -> None:
        super()._check_params()
        self.beta = check_positive_float(self.beta, "beta")
        self.n_iters = check_positive_int(self.n_iters, "n_iters", minimum=0)

    def _fit(self, query_bank: ScoredRows, gallery_bank: ScoredRows) -> None:
        self.set_state("query_bank", query_bank.augmented)
        self.fitted_meta["query_bank_size"] = len(query_bank.data)

    def _log_column_scaling(self, gallery: torch.Tensor) -> torch.Tensor:
        """``log b`` after ``n_iters`` iterations (log domain, blockwise)."""
        bank, beta, block = self.query_bank, self.beta, self.block_size
        log_row_mass = -math.log(bank.shape[0])
        log_col_mass = -math.log(gallery.shape[0])
        log_b = -logsumexp_scores(gallery, bank, beta, None, block)
        for _ in range(self.n_iters):
            log_a = log_row_mass - logsumexp_scores(bank, gallery, beta, log_b, block)
            log_b = log_col_mass - logsumexp_scores(gallery, bank, beta, log_a, block)
        return log_b

    def _gallery_columns(self, gallery: ScoredRows) -> GalleryColumns:
        log_b = self._log_column_scaling(gallery.augmented)
        return GalleryColumns(columns=(log_b / self.beta)[:, None])
