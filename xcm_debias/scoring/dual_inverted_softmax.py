r"""Dual inverted softmax and its dynamic variant: DBNorm (Wang et al., EMNLP 2023).

The product of two inverted softmaxes, one over a query bank ``B_q`` (calibration queries,
cross-modal similarity) and one over a gallery bank ``B_g`` (calibration gallery items,
same-modality similarity):

.. math::

    \tilde s(q, g) =
    \frac{\exp(\beta_1 s(q,g))}{\sum_{\hat q \in B_q} \exp(\beta_1 s(\hat q, g))} \cdot
    \frac{\exp(\beta_2 s(q,g))}{\sum_{\hat g \in B_g} \exp(\beta_2 s(\hat g, g))}.

Its log is ``(β₁ + β₂) s(q, g) − log Z_q(g) − log Z_g(g)``: a per-gallery-item offset.

The dynamic variant (dual dynamic inverted softmax) gates each factor as QB-Norm does: the
query-bank factor is normalised only when the query's raw top-1 lies in ``A_q`` (gallery items in
some bank query's top ``k``), the gallery-bank factor only when it lies in ``A_g`` (gallery items
in some gallery-bank item's top ``k``); an ungated factor stays ``exp(β_i s(q, g))``. Offset form:
``v(g) = −[log Z_q(g), log Z_g(g)] / (β₁ + β₂)``, ``u(q) = [top1 ∈ A_q, top1 ∈ A_g]``.

In score units the two normalisers weigh ``β₁/(β₁+β₂)`` and ``β₂/(β₁+β₂)``: with ``β₁ = β₂``
the gallery-bank term counts as much as the query-bank one. Same-modality similarities are much
larger and more spread than cross-modal ones (on the embedded world a gallery item's nearest
calibration neighbour: 0.67 image–image, 0.85 caption–caption, 0.42 cross-modal), so an equal
weight ranks gallery items by how crowded their own modality is around them rather than by
hubness towards queries. Hence the defaults ``β₁ = 10, β₂ = 0.5``: a light gallery-bank factor
(weight ≈ 5%), from a sweep on the world's tuning seeds where recall rose as β₂ → 0
(docs/methods/dual_inverted_softmax.md, with the command). The reference code's defaults (``β₁ = 1/1.99``, ``β₂ = 3``) make the query-bank
factor almost flat and the gallery-bank one dominant; on the world they cut image→text
recall@1 from 0.775 to 0.590.

Reference: Y. Wang, X. Jian, B. Xue, "Balance Act: Mitigating Hubness in Cross-Modal Retrieval
with Query and Gallery Banks", EMNLP 2023. The published ``DBNorm/dbnorm.py``
(yimuwangcs/Better_Cross_Modal_Retrieval) passes the gallery-bank×gallery matrix where the
test query×gallery matrix belongs in its first normaliser call; this is the paper's formula.
"""

from __future__ import annotations

import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.scoring._blockwise import activation_mask, logsumexp_scores
from xcm_debias.scoring.base import (
    GalleryColumns,
    ScoredRows,
    ScoreNormalizer,
    check_positive_float,
)


class DualInvertedSoftmax(ScoreNormalizer):
    """DBNorm: inverted softmax over a query bank times one over a gallery bank.

    ``score(q, g) = s(q, g) − (g_q·log Z_q(g) + g_g·log Z_g(g)) / (β₁ + β₂)`` with gates
    ``g_q = g_g = 1`` (static) or QB-Norm's top-1 gates (``dynamic=True``). ``scale = β₁ + β₂``.

    Args:
        beta_query: β₁ of the query-bank factor (cross-modal similarities).
        beta_gallery: β₂ of the gallery-bank factor (same-modality similarities); keep it well
            below β₁ (see the module docstring).
        dynamic: gate each factor by its activation set (dual dynamic inverted softmax).
        k: activation sets hold the gallery items in some bank row's top ``k``.
        block_size: tile edge of the blockwise products.

    Needs no labels.
    """

    def __init__(
        self,
        beta_query: float = 10.0,
        beta_gallery: float = 0.5,
        dynamic: bool = False,
        k: int = 1,
        block_size: int = 4096,
    ) -> None:
        super().__init__()
        self.beta_query = beta_query
        self.beta_gallery = beta_gallery
        self.dynamic = dynamic
        self.k = k
        self.block_size = block_size

    @property
    def scale(self) -> float:
        return float(self.beta_query) + float(self.beta_gallery)

    @property
    def needs_top1(self) -> bool:
        return bool(self.dynamic)

    def _check_params(self) -> None:
        super()._check_params()
        self.beta_query = check_positive_float(self.beta_query, "beta_query")
        self.beta_gallery = check_positive_float(self.beta_gallery, "beta_gallery")
        if not isinstance(self.dynamic, bool):
            raise TypeError(f"dynamic: expected a bool, got {self.dynamic!r}")
        self.k = check_positive_int(self.k, "k")

    def _fit(self, query_bank: ScoredRows, gallery_bank: ScoredRows) -> None:
        self.set_state("query_bank", query_bank.augmented)
        self.set_state("gallery_bank", gallery_bank.plain)
        self.fitted_meta["query_bank_size"] = len(query_bank.data)
        self.fitted_meta["gallery_bank_size"] = len(gallery_bank.data)

    def _gallery_columns(self, gallery: ScoredRows) -> GalleryColumns:
        g_cross, g_plain = gallery.augmented, gallery.plain
        log_zq = logsumexp_scores(g_cross, self.query_bank, self.beta_query, None, self.block_size)
        log_zg = logsumexp_scores(
            g_plain, self.gallery_bank, self.beta_gallery, None, self.block_size
        )
        columns = -torch.stack([log_zq, log_zg], dim=1) / self.scale
        if not self.dynamic:
            return GalleryColumns(columns=columns)
        active = torch.stack(
            [
                activation_mask(self.query_bank, g_cross, self.k, self.block_size),
                activation_mask(self.gallery_bank, g_plain, self.k, self.block_size),
            ],
            dim=1,
        )
        return GalleryColumns(columns=columns, active=active)
