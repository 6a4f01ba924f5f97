r"""Translation pooling: the captions of one translation set share one score (image→text).

Image→text over a multilingual caption gallery: an image's faithful captions in several
languages are equally relevant, yet the encoder ranks them by language (the prevalent
languages' captions lie closer to images), so top-1 exposure goes to a few languages.
Balancing the languages with score offsets alone (:class:`~xcm_debias.scoring.GroupBalance`,
:class:`~xcm_debias.scoring.ExposureShuffle`) cannot tell a translation of the best caption from
another item's caption in the favoured language: lifting a language lifts both, and costs
recall where the second outranks the first.

TranslationPooling finds the gallery's translation sets (captions that say the same thing in
different languages, mined by margin: :mod:`xcm_debias.scoring.translation_sets`) and scores
every member of a set ``T(g)`` by the set's pooled row,

.. math::

    \operatorname{score}(q, g) = q \cdot \hat g_{T(g)} + u(q) \cdot \bar v_{T(g)}, \qquad
    \hat g_T = \frac{\sum_{h \in T} h}{\lVert \sum_{h \in T} h \rVert}, \quad
    \bar v_T = \frac{1}{|T|} \sum_{h \in T} v(h),

the unit centroid of the members' embeddings (a mean of unit rows is shorter than one, which
would rank every pooled caption below an unpooled one) and the mean of the columns ``v`` that
earlier stages appended (an inverted softmax's offsets are pooled too), with ``u(q)`` the
query's columns of those stages. The members of a set then tie exactly, and a following
:class:`~xcm_debias.scoring.ExposureShuffle` with a small width splits every tie by language in
proportion to the languages' gallery shares: equal exposure among equally relevant captions,
the condition of fairness of exposure (Singh & Joachims 2018), at the recall of the ranking of
sets. Averaging translations also denoises a poorly encoded language's caption with its
translations' rows (multi-view pooling of parallel sentences, as in multilingual sentence
embedding evaluation; Artetxe & Schwenk 2019).

Offset form: ``v(g) = [\hat g_{T(g)}, \bar v_{T(g)}] − [g, v(g)]``, ``u(q) = [q, u(q)]``;
``scale = 1``. The sets depend on the whole gallery, so the gallery's columns are computed in
one pass over it (not tile by tile); mining scores every pair of languages' rows both ways
(see :func:`~xcm_debias.scoring.translation_sets.mutual_pairs`), once per gallery.

``min_margin="auto"`` fits the margin threshold on the labelled calibration gallery: the lowest
margin whose mined pairs share their ``item`` at a rate ≥ ``precision``. No threshold reaches it
(or the calibration gallery holds no translations) → no pair is accepted and the stage is the
identity.

References:
    M. Artetxe, H. Schwenk, "Margin-based Parallel Corpus Mining with Multilingual Sentence
    Embeddings", ACL 2019.
    A. Singh, T. Joachims, "Fairness of Exposure in Rankings", KDD 2018.

Needs the ``language`` label (``gallery_group``) on gallery rows (carried or inferred; rows of
unknown language are never pooled) and ``item`` labels on the calibration gallery for
``min_margin="auto"``. When no calibration gallery row carries the label, the stage is skipped
(a no-op, with ``fitted_meta["skipped"]`` saying why and a UserWarning).
"""

from __future__ import annotations

import numpy as np
import torch

from xcm_debias._validation import check_fraction, check_positive_int
from xcm_debias.scoring._groups import absent_label, group_labels, skipped_stage
from xcm_debias.scoring.base import (
    GalleryColumns,
    ScoredRows,
    ScoreNormalizer,
    check_positive_float,
)
from xcm_debias.scoring.translation_sets import (
    margin_for_precision,
    mutual_pairs,
    translation_sets,
)


class TranslationPooling(ScoreNormalizer):
    """Members of a mined translation set score as the set's pooled row (image→text).

    Args:
        min_margin: ratio-margin threshold of a mined pair (a positive float), or ``"auto"``:
            fitted on the calibration gallery for ``precision``.
        precision: share of accepted calibration pairs that must be true translations (same
            ``item``), in ``(0, 1]``, for ``min_margin="auto"``.
        k: neighbours in the margin's density terms.
        gallery_group: label naming the gallery rows' language.
        block_size: tile edge of the mining products.

    Needs ``gallery_group`` labels on gallery rows, ``item`` labels on the calibration
    gallery for ``min_margin="auto"``.
    """

    def __init__(
        self,
        min_margin: float | str = "auto",
        precision: float = 0.99,
        k: int = 4,
        gallery_group: str = "language",
        block_size: int = 4096,
    ) -> None:
        super().__init__()
        self.min_margin = min_margin
        self.precision = precision
        self.k = k
        self.gallery_group = gallery_group
        self.block_size = block_size

    @property
    def scale(self) -> float:
        return 1.0

    @property
    def needs_whole_gallery(self) -> bool:
        return True

    def _check_params(self) -> None:
        super()._check_params()
        if self.min_margin != "auto":
            self.min_margin = check_positive_float(self.min_margin, "min_margin")
        self.precision = check_fraction(self.precision, "precision", open_high=False)
        self.k = check_positive_int(self.k, "k")
        if not isinstance(self.gallery_group, str) or not self.gallery_group:
            raise TypeError(f"gallery_group: expected a label name, got {self.gallery_group!r}")

    # ------------------------------------------------------------------ fit
    def _fit(self, query_bank: ScoredRows, gallery_bank: ScoredRows) -> None:
        if absent_label(gallery_bank.data, self.gallery_group):
            self.fitted_meta.update(
                min_margin=None,
                skipped=skipped_stage("TranslationPooling", self.gallery_group, gallery_bank.data),
            )
            return
        if self.min_margin != "auto":
            self.fitted_meta.update(min_margin=float(self.min_margin))
            return
        languages = group_labels(
            gallery_bank.data, self.gallery_group, "TranslationPooling", "gallery_bank"
        )
        pairs = mutual_pairs(gallery_bank.plain, languages, self.k, self.block_size)
        items = gallery_bank.data.item.astype(str)
        correct = items[pairs.first] == items[pairs.second]
        threshold = margin_for_precision(pairs, correct, self.precision)
        accepted = pairs.margin >= threshold
        self.fitted_meta.update(
            min_margin=None if np.isinf(threshold) else threshold,
            calibration_pairs=int(len(correct)),
            calibration_pairs_accepted=int(accepted.sum()),
            calibration_precision=float(correct[accepted].mean()) if accepted.any() else None,
        )

    # ---------------------------------------------------------------- apply
    def _gallery_columns(self, gallery: ScoredRows) -> GalleryColumns:
        augmented = gallery.augmented
        threshold = self.fitted_meta.get("min_margin")
        if "skipped" in self.fitted_meta or threshold is None:
            return GalleryColumns(columns=torch.zeros_like(augmented))
        languages = group_labels(gallery.data, self.gallery_group, "TranslationPooling", "gallery")
        pairs = mutual_pairs(gallery.plain, languages, self.k, self.block_size)
        sets = torch.from_numpy(translation_sets(pairs, languages, threshold))
        sums = torch.zeros_like(augmented).index_add_(0, sets, augmented)
        counts = torch.bincount(sets, minlength=len(sets)).clamp_min(1)
        pooled = sums / counts[:, None].to(sums.dtype)
        dim = gallery.data.dim
        pooled[:, :dim] = torch.nn.functional.normalize(pooled[:, :dim], dim=1)
        return GalleryColumns(columns=pooled[sets] - augmented)

    def _query_columns(
        self, queries: ScoredRows, gallery_columns: GalleryColumns, top1: torch.Tensor | None
    ) -> torch.Tensor:
        return queries.augmented
