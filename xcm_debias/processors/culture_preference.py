r"""The culture preference of each caption language, as a shift of text embeddings.

Used by ``CultureLanguageDecoupler(method="preference")``. For a caption ``x`` (unit norm) of
item ``i`` and an image ``g`` of that item in culture ``c``, the *culture offset* of the score
is ``x·(g − ḡ_i)``, with ``ḡ_i`` the mean of item ``i``'s images: how much more than its item's
average image the caption prefers the culture-``c`` rendering of the same content. Over the
*implicit* calibration captions of language ``L`` (captions that name no culture) and every
(caption, relevant image) pair:

.. math::

    P_{L,c} = \overline{x\cdot(g - \bar g_i)}, \qquad
    G_{L,c} = \overline{g - \bar g_i}\quad(\text{rows } c = 1..M),\qquad
    \delta_L = G_L^{+} P_L .

``P_L`` is the language's mean culture preference in score space; ``δ_L`` is the minimum-norm
text shift that reproduces it (``G_L δ_L = P_L`` whenever ``P_L`` lies in the row space of
``G_L``, which holds when every item shows every culture: both sum to zero over ``c``). It lies
in the *culture subspace* (the span of the image culture offsets): the part of language ``L``'s
direction that predicts culture. Subtracting it, ``x' = x − δ_L``, sets the mean culture offset
of ``L``'s implicit captions to zero on the fitting rows, since
``\overline{x'·(g − ḡ_i)} = P_L − G_L δ_L = 0``, while every other component — the language
directions orthogonal to the culture subspace, and the per-caption culture that a caption's own
words carry (*…, in Japanese style*) — is kept. Captions that name a culture (extra column
``named_culture``) are left out of ``P_L``, so asked-for culture never counts as the
language's bias.

This is the score-space counterpart of subtracting a language's mean offset projected on the
culture subspace (``U_C U_Cᵀ m_L``, the ``"orthogonal"`` decoupler): it measures the
preference where retrieval reads it (scores against the item's own images), so no
within-item text mean is needed and the zero point is "no culture preferred", not "the
item's average caption". Related: the orthogonal-subspace view of language/culture in
Libovický et al. (EMNLP Findings 2020) and the group-mean removal of Bolukbasi et al.
(NeurIPS 2016, "hard debiasing": subtract a bias direction's component); here the direction
is fitted per language in score space.
"""

from __future__ import annotations

import numpy as np
import torch

from xcm_debias.metrics.relevance import relevant_pairs
from xcm_debias.processors import _stats


def preference_shifts(
    texts_x: torch.Tensor,
    text_codes: np.ndarray,
    n_languages: int,
    text_items: np.ndarray,
    images_x: torch.Tensor,
    image_codes: np.ndarray,
    n_cultures: int,
    image_items: np.ndarray,
    rtol: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(shifts [K, d], preference P [K, M], culture_rank)`` from unit rows (module docstring).

    ``text_codes``/``image_codes``: language/culture code of each row. ``culture_rank``: the
    rank of the stacked image culture offsets (the culture subspace). A language without
    implicit captions whose item has images gets a zero shift.
    """
    _, item_codes, item_counts = np.unique(image_items, return_inverse=True, return_counts=True)
    item_mean = _stats.group_means(images_x, item_codes, len(item_counts))
    offsets = images_x - item_mean[torch.from_numpy(item_codes)]
    q_rows, g_rows = relevant_pairs(text_items, image_items)
    cells = text_codes[q_rows] * n_cultures + image_codes[g_rows]
    n_cells = n_languages * n_cultures
    counts = np.bincount(cells, minlength=n_cells)
    present = counts > 0
    scores = (texts_x[torch.from_numpy(q_rows)] * offsets[torch.from_numpy(g_rows)]).sum(dim=1)
    sums = torch.zeros(n_cells, dtype=texts_x.dtype).index_add_(0, torch.from_numpy(cells), scores)
    grid = torch.zeros(n_cells, texts_x.shape[1], dtype=texts_x.dtype).index_add_(
        0, torch.from_numpy(cells), offsets[torch.from_numpy(g_rows)]
    )
    denominator = torch.from_numpy(np.maximum(counts, 1)).to(texts_x.dtype)
    preference = (sums / denominator).reshape(n_languages, n_cultures)
    grid = (grid / denominator.unsqueeze(1)).reshape(n_languages, n_cultures, -1)
    shifts = torch.zeros(n_languages, texts_x.shape[1], dtype=texts_x.dtype)
    for language in range(n_languages):
        rows = torch.from_numpy(present.reshape(n_languages, n_cultures)[language])
        if rows.any():
            g = grid[language][rows]
            shifts[language] = torch.linalg.pinv(g, rtol=rtol) @ preference[language][rows]
    culture_rank = int(_stats.orth_basis(offsets.T, rtol).shape[1]) if len(offsets) else 0
    return shifts, preference, culture_rank


__all__ = ["preference_shifts"]
