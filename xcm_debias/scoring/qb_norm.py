r"""Querybank Normalisation with the dynamic inverted softmax (Bogolin et al., CVPR 2022).

The inverted softmax is applied only to queries whose raw top-1 lies in the *activation set*
``A`` — the gallery items that are among the top-``k`` of at least one bank query:

.. math::

    \tilde s(q, g) =
    \begin{cases}
      \exp(\beta s(q,g)) / \sum_{\hat q \in B_q} \exp(\beta s(\hat q, g)) &
        \text{if } \operatorname{argmax}_{g'} s(q, g') \in A, \\
      s(q, g) & \text{otherwise.}
    \end{cases}

For a fixed query either branch is a monotone map of ``β s(q, g) − [gate]·log Z(g)``, so the
method is the inverted-softmax offset with a 0/1 query column: ``u(q) = [top1(q) ∈ A]``.

Reference: S.-V. Bogolin, I. Croitoru, H. Jin, Y. Liu, S. Albanie, "Cross Modal Retrieval with
Querybank Normalisation", CVPR 2022 (code: ioanacroi/qb-norm, ``dynamic_inverted_softmax.py``,
defaults ``k = 1``, ``β = 20``).
"""

from __future__ import annotations

from xcm_debias._validation import check_positive_int
from xcm_debias.scoring._blockwise import activation_mask
from xcm_debias.scoring.base import GalleryColumns, ScoredRows
from xcm_debias.scoring.inverted_softmax import InvertedSoftmax


class QBNorm(InvertedSoftmax):
    """Dynamic inverted softmax: the inverted softmax for queries whose top-1 is in ``A``.

    ``A`` is computed per gallery (bank queries' top-``k`` in that gallery, blockwise); the gate
    needs each query's raw top-1, passed as ``top1`` (``Debiased`` takes it from the same pass as
    the offset top-k under an ``ExactRetriever``: :mod:`xcm_debias.gated_topk`).

    Args:
        beta: inverse temperature β.
        k: the activation set holds every gallery item in some bank query's top ``k``.
        block_size: tile edge of the blockwise products.

    Needs no labels.
    """

    def __init__(self, beta: float = 20.0, k: int = 1, block_size: int = 4096) -> None:
        super().__init__(beta=beta, block_size=block_size)
        self.k = k

    @property
    def needs_top1(self) -> bool:
        return True

    def _check_params(self) -> None:
        super()._check_params()
        self.k = check_positive_int(self.k, "k")

    def _gallery_columns(self, gallery: ScoredRows) -> GalleryColumns:
        columns = super()._gallery_columns(gallery).columns
        active = activation_mask(self.query_bank, gallery.augmented, self.k, self.block_size)
        return GalleryColumns(columns=columns, active=active[:, None])
