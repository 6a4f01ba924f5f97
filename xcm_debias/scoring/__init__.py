"""Score-level methods: fitted on calibration banks, applied as offsets on any index.

See :mod:`xcm_debias.scoring.base` for the offset form ``score(q, g) = q·g + u(q)·v(g)`` that
lets :class:`xcm_debias.Debiased` run every method on an inner-product index.
"""

from __future__ import annotations

from xcm_debias.scoring.base import GalleryColumns, ScoredRows, ScoreNormalizer
from xcm_debias.scoring.csls import CSLS
from xcm_debias.scoring.dual_inverted_softmax import DualInvertedSoftmax
from xcm_debias.scoring.exposure_shuffle import ExposureShuffle
from xcm_debias.scoring.group_balance import GroupBalance
from xcm_debias.scoring.inverted_softmax import InvertedSoftmax
from xcm_debias.scoring.qb_norm import QBNorm
from xcm_debias.scoring.sinkhorn import SinkhornNorm
from xcm_debias.scoring.translation_pooling import TranslationPooling

__all__ = [
    "CSLS",
    "DualInvertedSoftmax",
    "ExposureShuffle",
    "GalleryColumns",
    "GroupBalance",
    "InvertedSoftmax",
    "QBNorm",
    "ScoreNormalizer",
    "ScoredRows",
    "SinkhornNorm",
    "TranslationPooling",
]
