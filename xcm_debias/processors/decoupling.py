"""CultureLanguageDecoupler: remove caption-language identity while keeping culture.

Cultural tugging lives where text language identity and image culture overlap: a German query
carries a "German" direction that also points at German-looking images. Two closed forms:

* ``"oblique"`` — ``x' = x − A(x − μ)``, ``A = [Σ_xz, 0](CᵀΣ⁻¹C)⁺CᵀΣ⁻¹``, ``C = [Σ_xz, Σ_xy]``
  with ``z`` one-hot language and ``y`` the culture of each calibration caption: one-hot on its
  own ``culture`` label, else the culture mix of its item's images (one-hot when one culture). Since ``AΣ_xz = Σ_xz`` and
  ``AΣ_xy = 0``: ``Cov(x', z) = 0`` (no linear probe predicts the language; class means
  coincide) while ``Cov(x', y) = Cov(x, y)`` exactly (constraints as in SPLINCE, Holstege et
  al. 2025). With no culture signal (``Σ_xy = 0``) it is LEACE. It cannot work when language and
  culture are confounded on the fitting rows (culture linearly predictable from language, e.g.
  every German caption describes a German item): then the two constraints contradict each other,
  and ``fit`` raises. Computed in whitened coordinates: ``A = [Σ_xz, 0]·(WC)⁺·W``, ``W = Σ^{-1/2}``
  (Ledoit–Wolf shrunk Σ by default).
* ``"orthogonal"`` — subspaces from within-item deviations: ``U_C = orth{culture means of
  (image − its item's image mean)}`` and ``U_L = orth{language means m_L of (caption − its
  item's caption mean)}``, then ``U_L⊥ = orth((I − U_CU_Cᵀ)U_L)``. A caption in language L
  becomes ``x − U_L⊥U_L⊥ᵀ(x − μ) − U_CU_Cᵀ m_L``: it loses the language directions outside the
  culture subspace and, inside it, only its language's mean culture preference (content that
  asks for a culture keeps it). Without items holding ≥ 2 images (or captions), the means of
  images per culture (captions per language) minus the overall mean are used instead, as
  recorded in ``fitted_meta``. Needs each caption's language at transform; languages unseen at
  fit get only the projection (no preference shift) and a warning.

* ``"preference"`` — remove from each caption only its language's mean culture preference,
  measured in score space on the *implicit* calibration captions (those without a
  ``named_culture``) against their items' images: ``x' = x − δ_L``, ``δ_L = G_L⁺P_L`` with
  ``P_{L,c}`` the mean of ``x·(g − ḡ_item)`` over language-``L`` captions and their item's
  culture-``c`` images ``g``, and ``G_{L,c}`` the mean of ``g − ḡ_item`` over the same pairs
  (:mod:`xcm_debias.processors.culture_preference`). ``δ_L`` lies in the culture subspace
  (span of the image culture offsets); the language directions orthogonal to it and the culture
  a caption's own words carry are kept, so a query that names a culture still retrieves it. On
  the fitting rows the mean culture offset of every language's implicit captions becomes 0
  exactly. Needs each caption's language at transform (unseen languages: unchanged, warning).

With a ``named_culture`` extra column on the calibration texts (the culture a caption names in
words), ``"oblique"`` takes it as that caption's culture ``y`` (so the culture the words carry
is the covariance it keeps: LEACE of language conditioned on explicit culture) and
``"orthogonal"``/``"preference"`` estimate the language offsets on the implicit captions only.

All change texts only by default (``apply_to=("text",)``); ``"oblique"`` may be applied to
images too (it needs no labels at transform). Rows are L2-normalised first (``normalize=True``);
outputs are float32.

References:
    Belrose et al., "LEACE: Perfect linear concept erasure in closed form", NeurIPS 2023.
    Holstege et al., "Preserving task-relevant information under linear concept removal"
    (SPLINCE), 2025.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from xcm_debias.data import EmbeddingSet
from xcm_debias.processors import _stats
from xcm_debias.processors.base import PostProcessor
from xcm_debias.processors.culture_preference import preference_shifts

METHODS = ("oblique", "orthogonal", "preference")
_TEXT_ONLY = ("orthogonal", "preference")
_RTOL = 1e-6
_ILL_CONDITIONED = 1e-4


def confounding(languages: np.ndarray, cultures: torch.Tensor, names: Sequence[str]) -> str | None:
    """How culture is linearly predictable from language on these rows, or ``None`` if not.

    ``languages``: each row's language; ``cultures``: each row's culture distribution
    ``[n, M]`` over ``names``. Centred ``[one-hot z, y]`` must have rank ``(K − 1) + rank(y_c)``;
    any shortfall means some combination of culture columns equals a combination of language
    indicators on these rows.
    """
    lang, lang_codes = np.unique(languages, return_inverse=True)
    z = _stats.one_hot(lang_codes, len(lang), cultures.dtype)
    zc, yc = z - z.mean(dim=0), cultures - cultures.mean(dim=0)
    expected = (len(lang) - 1) + _rank(yc)
    rank = _rank(torch.cat([zc, yc], dim=1))
    if rank >= expected:
        return None
    pure = []
    for i, name in enumerate(lang.tolist()):
        mix = cultures[torch.from_numpy(lang_codes == i)]
        if bool((mix == mix[0]).all()) and float(mix[0].max()) == 1.0:
            pure.append(f"every {name!r} caption has culture {names[int(mix[0].argmax())]!r}")
    detail = "; ".join(pure[:3]) if pure else "a combination of cultures follows from languages"
    return f"rank {rank} < {expected} for centred [one-hot language, culture] ({detail})"


def _rank(m: torch.Tensor) -> int:
    s = torch.linalg.svdvals(m)
    return int((s > 1e-9 * float(s[0])).sum()) if len(s) and float(s[0]) > 0 else 0


class CultureLanguageDecoupler(PostProcessor):
    """Remove language identity from captions while keeping their culture signal.

    Args:
        method: ``"oblique"`` (SPLINCE-style constrained LEACE, default), ``"orthogonal"`` or
            ``"preference"`` (remove each language's mean culture preference only).
        apply_to: modalities changed (default texts; ``"orthogonal"`` and ``"preference"``
            are text-only).
        shrinkage: covariance estimator of ``"oblique"``: ``"ledoit-wolf"``, ``"none"`` or a
            fixed intensity in [0, 1].
        normalize: L2-normalise rows before fitting and transforming.

    Labels: ``"oblique"`` — calibration texts need ``language`` and a culture (own label or
    via their item's images, or ``named_culture``). ``"orthogonal"``, ``"preference"`` — texts
    need ``language``, images ``culture``; ``item`` links captions and images; transform needs
    ``language``.
    """

    def __init__(
        self,
        method: str = "oblique",
        apply_to: Sequence[str] = ("text",),
        shrinkage: str | float = "ledoit-wolf",
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.method = method
        self.apply_to = tuple(apply_to) if not isinstance(apply_to, str) else (apply_to,)
        self.shrinkage = shrinkage
        self.normalize = normalize

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("language",) if self.method in _TEXT_ONLY else ()

    def _who(self, step: str) -> str:
        return f"CultureLanguageDecoupler(method={self.method!r}).{step}"

    def _fit(self, calibration: EmbeddingSet) -> None:
        who = self._who("fit")
        _stats.check_choice(self.method, "method", METHODS, who)
        shrinkage = _stats.check_shrinkage(self.shrinkage, who)
        if self.method in _TEXT_ONLY and self.apply_to != ("text",):
            raise ValueError(
                f"{who}: apply_to: method {self.method!r} shifts captions by their language's "
                f"culture preference and applies to texts only; expected ('text',), got "
                f"{self.apply_to}"
            )
        texts = _stats.text_rows(calibration, who)
        texts.require_label("language", who, "calibration text row")
        if self.method == "oblique":
            self._fit_oblique(calibration, texts, shrinkage, who)
        elif self.method == "orthogonal":
            self._fit_orthogonal(calibration, texts, who)
        else:
            self._fit_preference(calibration, texts, who)

    def _fit_oblique(
        self, calibration: EmbeddingSet, texts: EmbeddingSet, shrinkage: str | float, who: str
    ) -> None:
        culture_names, y = _stats.culture_profiles(calibration, texts, who)
        languages, lang_codes = _stats.classes_and_codes(texts.language, who, "language", 2)
        carriers = (y > 0).sum(dim=0)
        if bool((carriers < 2).any()):
            name = culture_names[int((carriers < 2).nonzero()[0])]
            raise ValueError(
                f"{who}: expected at least 2 calibration text rows per culture, got "
                f"{int(carriers.min())} for culture {name!r}"
            )
        if len(languages) < 2:
            raise ValueError(
                f"{who}: expected calibration captions in at least 2 languages, got {languages}"
            )
        problem = confounding(texts.language, y, culture_names)
        if problem is not None:
            raise ValueError(
                f"{who}: language and culture are confounded on the calibration text rows "
                f"({problem}): removing language while keeping culture is contradictory. Use "
                "captions of each culture in several languages, or method='orthogonal'"
            )
        x = _stats.prepare(texts.embeddings, self.normalize)
        z = _stats.one_hot(lang_codes, len(languages))
        mean, (sigma_xz, sigma_xy), (whiten,) = _stats.whitened_cross_covariances(
            x, (z, y), shrinkage
        )
        constraints = whiten @ torch.cat([sigma_xz, sigma_xy], dim=1)
        s = torch.linalg.svdvals(constraints)
        expected = (len(languages) - 1) + _rank(y - y.mean(dim=0))
        if expected and s[expected - 1] <= _ILL_CONDITIONED * s[0]:
            warnings.warn(
                f"{who}: the language and culture directions are nearly collinear on the "
                f"calibration rows (singular value ratio {float(s[expected - 1] / s[0]):.1e}); "
                "culture is kept only approximately",
                UserWarning,
                stacklevel=3,
            )
        right = (torch.linalg.pinv(constraints, rtol=_RTOL) @ whiten)[: len(languages)]
        self.set_state("left", sigma_xz.float())
        self.set_state("right", right.float())
        self.set_state("mean", mean.float())
        self.fitted_meta = {"languages": languages, "cultures": culture_names}

    def _fit_orthogonal(self, calibration: EmbeddingSet, texts: EmbeddingSet, who: str) -> None:
        images = _culture_images(calibration, who)
        languages, lang_codes = _stats.classes_and_codes(texts.language, who, "language", 2)
        cultures, cult_codes = _stats.classes_and_codes(images.culture, who, "culture", 1)
        if len(languages) < 2 or len(cultures) < 2:
            raise ValueError(
                f"{who}: expected at least 2 languages and 2 cultures, got languages "
                f"{languages} and cultures {cultures}"
            )
        implicit = _implicit(texts)
        if implicit.all():
            xt = _stats.prepare(texts.embeddings, self.normalize)
        else:
            texts = texts[implicit]
            languages, lang_codes = _stats.classes_and_codes(texts.language, who, "language", 2)
            xt = _stats.prepare(texts.embeddings, self.normalize)
        xi = _stats.prepare(images.embeddings, self.normalize)
        culture_offsets, culture_source = _within_item_offsets(
            xi, images.item, cult_codes, len(cultures)
        )
        language_offsets, language_source = _within_item_offsets(
            xt, texts.item, lang_codes, len(languages)
        )
        u_c = _stats.orth_basis(culture_offsets.T, _RTOL)
        u_l = _stats.orth_basis(language_offsets.T, _RTOL)
        u_perp = _stats.orth_basis(u_l - u_c @ (u_c.T @ u_l), _RTOL)
        preference = (language_offsets @ u_c) @ u_c.T
        self.set_state("basis", u_perp.float())
        self.set_state("preference", preference.float())
        self.set_state("mean", xt.mean(dim=0).float())
        self.fitted_meta = {
            "languages": languages,
            "cultures": cultures,
            "culture_rank": int(u_c.shape[1]),
            "language_rank": int(u_perp.shape[1]),
            "culture_basis": culture_source,
            "language_basis": language_source,
        }

    def _fit_preference(self, calibration: EmbeddingSet, texts: EmbeddingSet, who: str) -> None:
        images = _culture_images(calibration, who)
        implicit = _implicit(texts)
        if not implicit.any():
            raise ValueError(
                f"{who}: expected calibration captions that name no culture (named_culture ''), "
                f"got none of {len(texts)}"
            )
        texts = texts[implicit]
        languages, lang_codes = _stats.classes_and_codes(texts.language, who, "language", 1)
        cultures, cult_codes = _stats.classes_and_codes(images.culture, who, "culture", 1)
        if len(cultures) < 2:
            raise ValueError(f"{who}: expected images of at least 2 cultures, got {cultures}")
        _, item_codes = np.unique(images.item, return_inverse=True)
        spread = np.bincount(item_codes, minlength=item_codes.max() + 1)
        if spread.max(initial=0) < 2:
            raise ValueError(
                f"{who}: expected an item shown in at least 2 cultures (a culture offset is "
                "measured within an item), got one image per item"
            )
        shifts, preference, rank = preference_shifts(
            _stats.prepare(texts.embeddings, self.normalize),
            lang_codes,
            len(languages),
            texts.item,
            _stats.prepare(images.embeddings, self.normalize),
            cult_codes,
            len(cultures),
            images.item,
            _RTOL,
        )
        self.set_state("shifts", shifts.float())
        self.fitted_meta = {
            "languages": languages,
            "cultures": cultures,
            "culture_rank": rank,
            "preference": {
                lang: [round(float(v), 6) for v in row]
                for lang, row in zip(languages, preference.tolist(), strict=True)
            },
            "n_implicit_captions": int(len(texts)),
        }

    def forward(self, x: torch.Tensor, data: EmbeddingSet) -> torch.Tensor:
        x = _stats.prepare(x, self.normalize, torch.float32)  # a new tensor: edited in place
        if self.method == "oblique":
            return _stats.remove_low_rank(x, self.mean, self.right, self.left)
        if self.method == "preference":
            codes = _stats.language_codes(
                data, self.fitted_meta["languages"], self._who("transform")
            )
            return _stats.subtract_group_rows(x, codes, self.shifts)
        projected = _stats.remove_low_rank(x, self.mean, self.basis.T, self.basis)
        codes = _stats.language_codes(data, self.fitted_meta["languages"], self._who("transform"))
        return _stats.subtract_group_rows(projected, codes, self.preference)


def _culture_images(calibration: EmbeddingSet, who: str) -> EmbeddingSet:
    """The calibration image rows, each with a culture (else a clear error)."""
    image_mask = calibration.modality == "image"
    if not image_mask.any():
        raise ValueError(f"{who}: expected calibration image rows (with a culture), got none")
    images = calibration[image_mask]
    images.require_label("culture", who, "calibration image row")
    return images


def _implicit(texts: EmbeddingSet) -> np.ndarray:
    """Text rows that name no culture (every row without a ``named_culture`` column)."""
    named = texts.extra.get("named_culture")
    return np.ones(len(texts), dtype=bool) if named is None else named.astype(str) == ""


def _within_item_offsets(
    x: torch.Tensor, items: np.ndarray, codes: np.ndarray, n_groups: int
) -> tuple[torch.Tensor, str]:
    """Per-group mean of ``x − mean of its item`` over items holding ≥ 2 rows.

    Falls back to group means minus the overall mean when some group has fewer than 2 rows in
    such items. Returns the ``[n_groups, d]`` offsets and which estimate was used.
    """
    _, item_codes, item_counts = np.unique(items, return_inverse=True, return_counts=True)
    shared = item_counts[item_codes] >= 2
    if np.bincount(codes[shared], minlength=n_groups).min() >= 2:
        item_means = _stats.group_means(x, item_codes, len(item_counts))
        deviations = (x - item_means[torch.from_numpy(item_codes)])[torch.from_numpy(shared)]
        return _stats.group_means(deviations, codes[shared], n_groups), "within-item"
    return _stats.group_means(x, codes, n_groups) - x.mean(dim=0), "group-means"


__all__ = ["METHODS", "CultureLanguageDecoupler", "confounding"]
