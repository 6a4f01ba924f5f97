"""LanguageAlignment: map each caption language onto a shared target, learnt from translations.

The calibration set's translations — captions of one item in several languages — give, for
every language L, pairs (caption x in L, target t of the same item). Per language a linear map
``x ↦ x W_L`` (row convention) is fitted:

* ``"ridge"`` — ``W_L = argmin ‖X_L W − T_L‖² + λ‖W − I‖²
  = I + (X_LᵀX_L + λI)⁻¹X_Lᵀ(T_L − X_L)``: shrunk toward the identity, so a language with few
  or noisy translations is barely moved. λ per language is chosen, when ``lam=None``, on an
  inner item-disjoint split of the calibration items (held-out squared error over ``lam_grid``),
  then the map is refitted on every item (a Cholesky solve). The held-out errors of all λ come
  from one eigendecomposition of the smaller Gram matrix (``X_LᵀX_L`` or ``X_LX_Lᵀ``). Fitted on
  fewer captions than dimensions, ``W_L − I`` has rank ≤ ``n_L``; when every rank is at most
  ``d/4`` the factors are kept and rows are transformed as ``x + (x left_L) right_L``.
* ``"procrustes"`` — the rigid option: ``W_L = argmin_{WᵀW = I} ‖X_L W − T_L‖ = U Vᵀ`` with
  ``U S Vᵀ = X_LᵀT_L`` (orthogonal Procrustes as in MUSE, Conneau et al. 2018).

Targets (``target``): ``"centroid"`` — the item centroid, the mean over languages of the item's
per-language caption means (items captioned in ≥ 2 languages); ``"image"`` — the mean of the
item's calibration images (every language is mapped, a cross-modal map fitted on the
calibration image–caption pairs); or a pivot language code — the item's caption(s) in that
language, whose own map is the identity.

The fix for "insufficiently resolved" low-resource languages: their captions are pulled toward
what the other languages say about the same item. Applies to texts only (images are the target
space and are unchanged); needs each text's language at transform; languages unseen at fit are
left unchanged (identity) with a warning. Rows are L2-normalised first (``normalize=True``);
outputs are float32, not re-normalised.

Reference:
    Conneau, Lample, Ranzato, Denoyer, Jégou, "Word translation without parallel data"
    (MUSE), ICLR 2018.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from xcm_debias._validation import check_fraction, check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.processors import _stats
from xcm_debias.processors.base import PostProcessor
from xcm_debias.processors.contrastive_map import contrastive_steps

METHODS = ("ridge", "procrustes", "contrastive")
N_STEP_CHECKS = 20
DEFAULT_LAM_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)


class RidgePath:
    """Held-out errors of the ridge maps ``W(λ) = I + (XᵀX + λI)⁻¹Xᵀ(T − X)`` over many λ.

    One eigendecomposition serves every λ: with ``n ≥ d`` rows, ``XᵀX = VΛVᵀ`` and
    ``W(λ) − I = V diag(1/(Λ + λ)) VᵀXᵀ(T − X)``; with ``n < d``, ``XXᵀ = UΛUᵀ`` and
    ``W(λ) − I = XᵀU diag(1/(Λ + λ)) Uᵀ(T − X)`` (the push-through identity). Both are kept as
    ``left @ diag(1/(Λ + λ)) @ right``.
    """

    def __init__(self, x: torch.Tensor, t: torch.Tensor) -> None:
        n, d = x.shape
        if n >= d:
            evals, evecs = torch.linalg.eigh(x.T @ x)
            self.left, self.right = evecs, evecs.T @ (x.T @ (t - x))
        else:
            evals, evecs = torch.linalg.eigh(x @ x.T)
            self.left, self.right = x.T @ evecs, evecs.T @ (t - x)
        self.evals = evals.clamp_min(0)

    def squared_errors(
        self, x: torch.Tensor, t: torch.Tensor, lams: Sequence[float]
    ) -> list[float]:
        """``‖x W(λ) − t‖²`` for each λ, without forming any ``W(λ)``.

        With ``R = x − t``, ``P = x·left``, ``Q = right`` and ``D = diag(1/(Λ + λ))``:
        ``‖R + PDQ‖² = ‖R‖² + 2·Σ_i D_i (PᵀRQᵀ)_ii + Σ_ij D_i D_j (PᵀP)_ij (QQᵀ)_ij``.
        """
        r = x - t
        p = x @ self.left
        linear = ((r @ self.right.T) * p).sum(dim=0)
        quadratic = (p.T @ p) * (self.right @ self.right.T)
        base = float(r.square().sum())
        errors = []
        for lam in lams:
            dd = 1.0 / (self.evals + lam)
            errors.append(base + 2.0 * float(dd @ linear) + float(dd @ quadratic @ dd))
        return errors


def ridge_map(x: torch.Tensor, t: torch.Tensor, lam: float) -> torch.Tensor:
    """``I + (XᵀX + λI)⁻¹Xᵀ(T − X)`` by a Cholesky solve (λ > 0 keeps the system definite)."""
    left, right = ridge_delta(x, t, lam)
    return torch.eye(x.shape[1], dtype=x.dtype) + left @ right


def ridge_delta(x: torch.Tensor, t: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``W − I`` of :func:`ridge_map` as a product ``left @ right``.

    With ``n ≥ d`` rows: ``left = I``, ``right = (XᵀX + λI)⁻¹Xᵀ(T − X)``. With ``n < d``, by the
    push-through identity ``(XᵀX + λI)⁻¹Xᵀ = Xᵀ(XXᵀ + λI)⁻¹``: ``left = Xᵀ`` (``d × n``),
    ``right = (XXᵀ + λI)⁻¹(T − X)`` (``n × d``) — a map of rank ≤ n around the identity.
    """
    n, d = x.shape
    residual = t - x
    if n >= d:
        factor = torch.linalg.cholesky(x.T @ x + lam * torch.eye(d, dtype=x.dtype))
        return torch.eye(d, dtype=x.dtype), torch.cholesky_solve(x.T @ residual, factor)
    factor = torch.linalg.cholesky(x @ x.T + lam * torch.eye(n, dtype=x.dtype))
    return x.T, torch.cholesky_solve(residual, factor)


def procrustes(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Orthogonal ``W`` minimising ``‖x W − t‖_F``: ``U Vᵀ`` from ``svd(xᵀt)``."""
    u, _, vh = torch.linalg.svd(x.T @ t)
    return u @ vh


class LanguageAlignment(PostProcessor):
    """Per-language linear map onto the item centroid (or a pivot language), from translations.

    Args:
        method: ``"ridge"`` (default), ``"procrustes"`` or ``"contrastive"``.
        target: ``"centroid"`` or a pivot language code present in the calibration captions.
        lam: ridge strength λ (same for every language; in units of unit-norm rows, so λ is
            comparable to a number of captions); ``None`` picks λ per language from ``lam_grid``
            on an inner item-disjoint split.
        lam_grid: candidate λ values when ``lam=None``.
        val_size: share of each language's items held out to choose λ.
        seed: seed of the inner split.
        normalize: L2-normalise rows before fitting and transforming.
        temperature: τ of the contrastive loss (``method="contrastive"``).
        max_steps: most Adam steps of the contrastive fit; the held-out loss is checked every
            ``max(1, max_steps // 20)`` steps and the best count kept.
        learning_rate: Adam's step size for the contrastive fit.

    Labels: calibration text rows need ``language`` and ``item`` (shared across translations);
    transform needs ``language``.
    """

    needs = ("language",)
    apply_to = ("text",)

    def __init__(
        self,
        method: str = "ridge",
        target: str = "centroid",
        lam: float | None = None,
        lam_grid: Sequence[float] = DEFAULT_LAM_GRID,
        val_size: float = 0.25,
        seed: int = 0,
        normalize: bool = True,
        temperature: float = 0.05,
        max_steps: int = 200,
        learning_rate: float = 1e-3,
    ) -> None:
        super().__init__()
        self.method = method
        self.target = target
        self.lam = lam
        self.lam_grid = tuple(lam_grid)
        self.val_size = val_size
        self.seed = seed
        self.normalize = normalize
        self.temperature = temperature
        self.max_steps = max_steps
        self.learning_rate = learning_rate

    def _who(self, step: str) -> str:
        return f"LanguageAlignment(method={self.method!r}, target={self.target!r}).{step}"

    def _check_params(self, who: str) -> None:
        _stats.check_choice(self.method, "method", METHODS, who)
        if not isinstance(self.target, str) or not self.target:
            raise ValueError(
                f"{who}: target: expected 'centroid', 'image' or a language code, "
                f"got {self.target!r}"
            )
        for name, values in (
            ("lam", () if self.lam is None else (self.lam,)),
            ("lam_grid", self.lam_grid),
        ):
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v) > 0:
                    raise ValueError(f"{who}: {name}: expected positive numbers, got {v!r}")
        if self.lam is None and not self.lam_grid:
            raise ValueError(
                f"{who}: lam_grid: expected at least one value when lam=None, got none"
            )
        check_fraction(self.val_size, f"{who}: val_size")
        for name in ("temperature", "learning_rate"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v) > 0:
                raise ValueError(f"{who}: {name}: expected a positive number, got {v!r}")
        self.max_steps = check_positive_int(self.max_steps, f"{who}: max_steps", minimum=0)

    def _fit(self, calibration: EmbeddingSet) -> None:
        who = self._who("fit")
        self._check_params(who)
        texts = _stats.text_rows(calibration, who)
        texts.require_label("language", who, "calibration text row")
        languages, codes = _stats.classes_and_codes(texts.language, who, "language", 1)
        if self.target not in ("centroid", "image") and self.target not in languages:
            raise ValueError(
                f"{who}: target: pivot language {self.target!r} has no calibration captions; "
                f"languages present: {languages}"
            )
        x = _stats.prepare(texts.embeddings, self.normalize)
        items, item_codes = np.unique(texts.item, return_inverse=True)
        if self.target == "image":
            targets, has_target = self._image_targets(calibration, items, who)
        else:
            targets, has_target = self._targets(x, codes, item_codes, len(items), languages)
        rng = np.random.default_rng(self.seed)
        maps, lams, deltas, steps = [], {}, {}, {}
        for lang, name in enumerate(languages):
            if name == self.target:
                maps.append(torch.eye(x.shape[1], dtype=x.dtype))
                continue
            rows = np.flatnonzero((codes == lang) & has_target[item_codes])
            if len(rows) < 2:
                raise ValueError(
                    f"{who}: expected at least 2 captions in language {name!r} whose item also "
                    f"has a target ({self.target}), got {len(rows)}: LanguageAlignment learns "
                    "from translations (captions of one item in several languages)"
                )
            xl, tl = x[rows], targets[item_codes[rows]]
            if self.method == "procrustes":
                maps.append(procrustes(xl, tl))
                continue
            val = None
            if self.lam is None or self.method == "contrastive":
                val = self._inner_split(item_codes[rows], rng, name, who)
            lam = float(self.lam) if self.lam is not None else self._choose_lam(xl, tl, val)
            lams[name] = lam
            if self.method == "contrastive":
                steps[name] = self._choose_steps(xl, tl, item_codes[rows], val, lam)
                w0 = ridge_map(xl, tl, lam)
                maps.append(
                    contrastive_steps(
                        xl, tl, item_codes[rows], w0, *self._adam_params(), steps[name]
                    )[0]
                )
                continue
            deltas[lang] = ridge_delta(xl, tl, lam)
            maps.append(torch.eye(x.shape[1], dtype=x.dtype) + deltas[lang][0] @ deltas[lang][1])
        self.set_state("maps", torch.stack(maps).float())
        self._set_low_rank(deltas, len(languages), x.shape[1], x.dtype)
        self.fitted_meta = {"languages": languages}
        if lams:
            self.fitted_meta["lam"] = lams
        if steps:
            self.fitted_meta["steps"] = steps

    def _set_low_rank(
        self,
        deltas: dict[int, tuple[torch.Tensor, torch.Tensor]],
        n_languages: int,
        dim: int,
        dtype: torch.dtype,
    ) -> None:
        """Keep ``W_L = I + left_L right_L`` factored when every rank is at most ``d/4``.

        Ridge maps fitted on fewer captions than dimensions are the identity plus a low-rank
        term; transforming by ``x + (x left) right`` then costs ``2r/d`` of the full ``x W``
        (small calibration sets: 60 captions per language at d = 512 cost a quarter). Factors
        are zero-padded to the largest rank (zero for the identity maps).
        """
        self._buffers.pop("left", None)
        self._buffers.pop("right", None)
        ranks = [left.shape[1] for left, _ in deltas.values()]
        if not ranks or max(ranks) > dim // 4:
            return
        rank = max(ranks)
        left = torch.zeros(n_languages, dim, rank, dtype=dtype)
        right = torch.zeros(n_languages, rank, dim, dtype=dtype)
        for lang, (l_factor, r_factor) in deltas.items():
            left[lang, :, : l_factor.shape[1]] = l_factor
            right[lang, : r_factor.shape[0]] = r_factor
        self.set_state("left", left.float())
        self.set_state("right", right.float())

    def _image_targets(
        self, calibration: EmbeddingSet, items: np.ndarray, who: str
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Per-item mean of the item's (normalised) calibration image rows, and which items have one."""
        is_image = calibration.modality == "image"
        if not is_image.any():
            raise ValueError(
                f"{who}: target: 'image' needs calibration image rows (same items as the "
                "captions), got none"
            )
        images = calibration[is_image]
        images.require_label("item", who, "calibration image row")
        slot = np.searchsorted(items, images.item).clip(max=len(items) - 1)
        known = items[slot] == images.item
        codes = slot[known]
        x = _stats.prepare(images.embeddings[torch.from_numpy(known)], self.normalize)
        counts = np.bincount(codes, minlength=len(items))
        means = torch.zeros(len(items), x.shape[1], dtype=x.dtype)
        if len(codes):
            means[torch.from_numpy(np.flatnonzero(counts))] = _stats.group_means(
                x, np.unique(codes, return_inverse=True)[1].reshape(-1), int((counts > 0).sum())
            )
        return means, counts > 0

    def _targets(
        self,
        x: torch.Tensor,
        codes: np.ndarray,
        item_codes: np.ndarray,
        n_items: int,
        languages: list[str],
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Per-item target ``[n_items, d]`` and whether each item has one."""
        k = len(languages)
        cell = item_codes * k + codes  # one cell per (item, language)
        cells, cell_codes = np.unique(cell, return_inverse=True)
        cell_means = _stats.group_means(x, cell_codes, len(cells))
        cell_item, cell_lang = cells // k, cells % k
        if self.target == "centroid":
            # every item has at least one caption, so every group below is non-empty
            n_lang = np.bincount(cell_item, minlength=n_items)
            return _stats.group_means(cell_means, cell_item, n_items), n_lang >= 2
        pivot = languages.index(self.target)
        targets = torch.zeros(n_items, x.shape[1], dtype=x.dtype)
        chosen = cell_lang == pivot
        targets[torch.from_numpy(cell_item[chosen])] = cell_means[torch.from_numpy(chosen)]
        has = np.zeros(n_items, dtype=bool)
        has[cell_item[chosen]] = True
        return targets, has

    def _inner_split(
        self, row_items: np.ndarray, rng: np.random.Generator, name: str, who: str
    ) -> np.ndarray:
        """Held-out mask of an item-disjoint split of one language's rows (``val_size``)."""
        items = np.unique(row_items)
        if len(items) < 2:
            raise ValueError(
                f"{who}: choosing lam or steps needs captions of at least 2 items in language "
                f"{name!r}, got {len(items)}; pass lam explicitly (method='ridge')"
            )
        n_val = min(max(int(round(self.val_size * len(items))), 1), len(items) - 1)
        val_items = rng.permutation(items)[:n_val]
        return np.isin(row_items, val_items)

    def _choose_lam(self, xl: torch.Tensor, tl: torch.Tensor, val: np.ndarray) -> float:
        """λ minimising held-out ``‖X W − T‖²`` on the inner split ``val``."""
        path = RidgePath(xl[~val], tl[~val])
        errors = path.squared_errors(xl[val], tl[val], self.lam_grid)
        return float(self.lam_grid[int(np.argmin(errors))])

    def _choose_steps(
        self,
        xl: torch.Tensor,
        tl: torch.Tensor,
        row_items: np.ndarray,
        val: np.ndarray,
        lam: float,
    ) -> int:
        """Adam steps minimising the held-out contrastive loss on the inner split ``val``."""
        every = max(1, self.max_steps // N_STEP_CHECKS)
        train_x, train_t = xl[~val], tl[~val]
        _, losses = contrastive_steps(
            train_x,
            train_t,
            row_items[~val],
            ridge_map(train_x, train_t, lam),
            *self._adam_params(),
            self.max_steps,
            every,
            (xl[val], tl[val], row_items[val]),
        )
        return every * int(np.argmin(losses))

    def _adam_params(self) -> tuple[float, float]:
        return float(self.temperature), float(self.learning_rate)

    def forward(self, x: torch.Tensor, data: EmbeddingSet) -> torch.Tensor:
        codes = _stats.language_codes(data, self.fitted_meta["languages"], self._who("transform"))
        if "left" in self._buffers:  # x + (x left) right: the maps' low-rank form
            return _stats.apply_per_group(
                x,
                codes,
                lambda lang, rows, spare: torch.addmm(
                    rows, rows @ self.left[lang], self.right[lang], out=spare
                ),
                self.normalize,
            )
        return _stats.apply_per_group(
            x, codes, _stats.affine_map(self.maps), self.normalize, parallel=True
        )


__all__ = ["METHODS", "LanguageAlignment", "RidgePath", "procrustes", "ridge_delta", "ridge_map"]
