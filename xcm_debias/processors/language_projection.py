"""LanguageProjection: remove caption-language identity from embeddings.

Four closed forms, all fitted on the calibration text rows with their language as one-hot
labels ``z`` (one column per language, never one ordinal column):

* ``"center"`` — ``x − μ_L + μ`` (Libovický et al. 2020): every language's mean moved onto the
  pooled text mean. The ordinary-least-squares residual of ``x`` on one-hot ``z``, i.e.
  concept-erasure's ``OracleEraser``. Needs each text's language at transform time.
* ``"subspace"`` — ``x − UUᵀ(x − μ)``, ``U = orth{μ_L − μ}``: orthogonal projection off the
  span of the language-mean offsets (rank ≤ K − 1) = ``LeaceEraser(method="orth")``.
* ``"leace"`` — ``x − Σ_xz(Σ_xzᵀΣ⁻¹Σ_xz)⁺Σ_xzᵀΣ⁻¹(x − μ)`` (LEACE, Belrose et al. 2023): the
  least-squares edit after which no linear probe predicts the language better than a constant
  (class-conditional means coincide). Computed as ``W⁺uuᵀW`` with ``W = Σ^{-1/2}`` and ``u`` an
  orthonormal basis of ``WΣ_xz`` — concept-erasure's ``LeaceEraser`` without its covariance
  trace constraint. Σ is Ledoit–Wolf shrunk by default (sklearn's estimator; concept-erasure's
  own ``shrinkage=True`` is a different, RMT-based linear shrinkage). The erasure guarantee
  ``Cov(x', z) = 0`` holds on the fitting rows for any positive-definite Σ estimate.
* ``"lir"`` — per language, remove the top-``rank`` right singular vectors ``V_L`` of the
  *uncentred* matrix of that language's captions: ``x − x V_L V_Lᵀ`` (Language Information
  Removal, Yang et al. 2021). Needs each text's language at transform time.

Images have no language, so by default only captions change (``apply_to=("text",)``, images
unchanged). ``"subspace"`` and ``"leace"`` are one affine map of the space and may also be
applied to images (``apply_to=("text", "image")``); on the embedded world (seeds 0 and 1) that
cost 3–5 points of text→image recall@1 and pushed French (both seeds) and German (seed 1)
own-culture retrieval below chance (0.03–0.04 against 0.125), so it is not the default. ``"center"`` and ``"lir"`` need a
language per row and refuse images. Rows are L2-normalised first (``normalize=True``); outputs
are float32 and not re-normalised.
Languages unseen at fit: ``"center"``/``"lir"`` leave their rows unchanged and warn.

References:
    Belrose et al., "LEACE: Perfect linear concept erasure in closed form", NeurIPS 2023.
    Libovický, Rosa, Fraser, "On the language neutrality of pre-trained multilingual
    representations", Findings of EMNLP 2020.
    Yang et al., "A simple and effective method to eliminate the self language bias in
    multilingual representations", EMNLP 2021.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.processors import _stats
from xcm_debias.processors.base import PostProcessor

METHODS = ("center", "subspace", "leace", "lir")
_NEEDS_LANGUAGE = ("center", "lir")


def leace_factors(
    x: torch.Tensor, z: torch.Tensor, shrinkage: str | float, rtol: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LEACE of concept ``z`` from rows ``x``: ``(left [d, r], right [r, d], mean [d])``.

    The eraser is ``x − (x − mean) @ rightᵀ @ leftᵀ`` with ``left·right = Σ_xz(Σ_xzᵀΣ⁻¹Σ_xz)⁺
    Σ_xzᵀΣ⁻¹``; singular values of ``WΣ_xz`` at or below ``rtol·σ_max`` are dropped, so K
    one-hot classes give rank ≤ K − 1.
    """
    mean, (sigma_xz,), (whiten, unwhiten) = _stats.whitened_cross_covariances(
        x, (z,), shrinkage, (-0.5, 0.5)
    )
    u = _stats.orth_basis(whiten @ sigma_xz, rtol)
    return unwhiten @ u, u.T @ whiten, mean


class LanguageProjection(PostProcessor):
    """Remove language identity: ``"center"``, ``"subspace"``, ``"leace"`` or ``"lir"``.

    Args:
        method: which closed form (see the module docstring for formulas and sources).
        apply_to: modalities changed at transform (default texts; ``"subspace"``/``"leace"``
            may also take ``"image"``, ``"center"``/``"lir"`` need a language and cannot).
        shrinkage: covariance estimator of ``"leace"``: ``"ledoit-wolf"`` (default), ``"none"``
            (sample covariance, pseudo-inverted when singular) or a fixed intensity in [0, 1].
        rank: directions removed per language by ``"lir"`` (each language needs at least
            ``rank`` calibration captions).
        normalize: L2-normalise rows before fitting and transforming.

    Labels: calibration text rows need ``language``; at transform, ``"center"``/``"lir"``
    need ``language`` on the rows they change.
    """

    def __init__(
        self,
        method: str = "leace",
        apply_to: Sequence[str] = ("text",),
        shrinkage: str | float = "ledoit-wolf",
        rank: int = 1,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.method = method
        self.apply_to = tuple(apply_to) if not isinstance(apply_to, str) else (apply_to,)
        self.shrinkage = shrinkage
        self.rank = rank
        self.normalize = normalize

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("language",) if self.method in _NEEDS_LANGUAGE else ()

    def _who(self, step: str) -> str:
        return f"LanguageProjection(method={self.method!r}).{step}"

    def _fit(self, calibration: EmbeddingSet) -> None:
        who = self._who("fit")
        _stats.check_choice(self.method, "method", METHODS, who)
        shrinkage = _stats.check_shrinkage(self.shrinkage, who)
        rank = check_positive_int(self.rank, f"{who}: rank")
        if self.method in _NEEDS_LANGUAGE and "image" in self.apply_to:
            raise ValueError(
                f"{who}: apply_to: method {self.method!r} needs each row's language and images "
                f"have none; expected apply_to=('text',), got {self.apply_to}"
            )
        texts = _stats.text_rows(calibration, who)
        texts.require_label("language", who, "calibration text row")
        min_rows = rank if self.method == "lir" else 2
        languages, codes = _stats.classes_and_codes(
            texts.language, who, "language", max(min_rows, 2)
        )
        if len(languages) < 2 and self.method != "lir":
            raise ValueError(
                f"{who}: expected calibration captions in at least 2 languages (nothing to erase "
                f"otherwise), got {languages}"
            )
        x = _stats.prepare(texts.embeddings, self.normalize)
        k = len(languages)
        self.fitted_meta = {"languages": languages}
        if self.method == "center":
            means = _stats.group_means(x, codes, k)
            self.set_state("shift", (means - x.mean(dim=0)).float())
        elif self.method == "subspace":
            mean = x.mean(dim=0)
            basis = _stats.orth_basis((_stats.group_means(x, codes, k) - mean).T)
            self.set_state("basis", basis.float())
            self.set_state("mean", mean.float())
            self.fitted_meta["rank"] = int(basis.shape[1])
        elif self.method == "leace":
            left, right, mean = leace_factors(x, _stats.one_hot(codes, k), shrinkage)
            self.set_state("left", left.float())
            self.set_state("right", right.float())
            self.set_state("mean", mean.float())
            self.fitted_meta["rank"] = int(left.shape[1])
        else:
            bases = []
            for lang in range(k):
                bases.append(_stats.top_right_singular(x[torch.from_numpy(codes == lang)], rank))
            self.set_state("bases", torch.stack(bases).float())
            self.fitted_meta["rank"] = rank

    def forward(self, x: torch.Tensor, data: EmbeddingSet) -> torch.Tensor:
        if self.method == "lir":  # apply_per_group normalises chunk by chunk: no prepared copy
            codes = _stats.language_codes(
                data, self.fitted_meta["languages"], self._who("transform")
            )
            return _stats.apply_per_group(
                x,
                codes,
                lambda lang, rows, _: rows.addmm_(
                    rows @ self.bases[lang], self.bases[lang].T, alpha=-1
                ),
                self.normalize,
            )
        if self.method == "center":  # one pass: normalise and shift block by block
            codes = _stats.language_codes(
                data, self.fitted_meta["languages"], self._who("transform")
            )
            return _stats.apply_per_group(
                x, codes, _stats.affine_map(None, -self.shift), self.normalize, parallel=True
            )
        x = _stats.prepare(x, self.normalize, torch.float32)  # a new tensor: edited in place
        if self.method == "subspace":
            return _stats.remove_low_rank(x, self.mean, self.basis.T, self.basis)
        return _stats.remove_low_rank(x, self.mean, self.right, self.left)


__all__ = ["METHODS", "LanguageProjection", "leace_factors"]
