r"""Cross-domain similarity local scaling, CSLS (Conneau et al., ICLR 2018).

.. math:: \operatorname{CSLS}(q, g) = 2 s(q, g) - r_k(q) - r_k(g),

with ``r_k(g)`` the mean similarity of ``g`` to its ``k`` nearest query-bank items and
``r_k(q)`` the mean similarity of ``q`` to its ``k`` nearest gallery-bank items (the bank of the
other side). For a fixed query, ``r_k(q)`` is a constant and ``r_k(g)`` a per-gallery offset.

Offset form in ``score = CSLS / 2`` units (``scale = 2``): ``v(g) = [−r_k(g)/2, 1]``,
``u(q) = [1, −r_k(q)/2]``, so ``score(q, g)`` equals ``CSLS(q, g) / 2`` exactly.

Reference: A. Conneau, G. Lample, M. Ranzato, L. Denoyer, H. Jégou, "Word Translation Without
Parallel Data", ICLR 2018 (code: facebookresearch/MUSE, ``k = 10``). The banks are calibration
rows, never test rows.
"""

from __future__ import annotations

import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.scoring._blockwise import mean_topk_scores
from xcm_debias.scoring.base import GalleryColumns, ScoredRows, ScoreNormalizer


class CSLS(ScoreNormalizer):
    """CSLS: ``score(q, g) = s(q, g) − r_k(g)/2 − r_k(q)/2``.

    Args:
        k: neighbourhood size of ``r_k`` (at most the size of each bank).
        block_size: tile edge of the blockwise products.

    Needs no labels.
    """

    def __init__(self, k: int = 10, block_size: int = 4096) -> None:
        super().__init__()
        self.k = k
        self.block_size = block_size

    @property
    def scale(self) -> float:
        return 2.0

    def _check_params(self) -> None:
        super()._check_params()
        self.k = check_positive_int(self.k, "k")

    def _fit(self, query_bank: ScoredRows, gallery_bank: ScoredRows) -> None:
        smallest = min(len(query_bank.data), len(gallery_bank.data))
        if self.k > smallest:
            raise ValueError(
                f"k: expected at most {smallest} (the smaller calibration bank), got {self.k}"
            )
        self.set_state("query_bank", query_bank.augmented)
        self.set_state("gallery_bank", gallery_bank.augmented)

    def _gallery_columns(self, gallery: ScoredRows) -> GalleryColumns:
        r_g = mean_topk_scores(gallery.augmented, self.query_bank, self.k, self.block_size)
        return GalleryColumns(columns=torch.stack([-r_g / 2, torch.ones_like(r_g)], dim=1))

    def _query_columns(
        self, queries: ScoredRows, gallery_columns: GalleryColumns, top1: torch.Tensor | None
    ) -> torch.Tensor:
        r_q = mean_topk_scores(queries.augmented, self.gallery_bank, self.k, self.block_size)
        return torch.stack([torch.ones_like(r_q), -r_q / 2], dim=1)
