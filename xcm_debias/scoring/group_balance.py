r"""Group-level score offsets that are entropic OT dual potentials (GroupBalance).

Bias in multilingual retrieval is a *group* preference: text→image, a query in language ``a``
prefers images of culture ``b`` beyond what its content asks for; image→text, images prefer
captions in a prevalent language. GroupBalance subtracts one offset per (query group, gallery
group) pair,

.. math:: \operatorname{score}(q, g) = s(q, g) - c_{A(q), B(g)},

with ``c`` chosen on the calibration banks so that the *soft top-1 mass* of every gallery group
``b`` over the bank queries of group ``a`` equals its target share ``t_{ab}``:

.. math::

    p(g \mid q) = \operatorname{softmax}_{g \in B_g}\big((s(q,g) - c_{A(q),B(g)}) / \tau\big),
    \qquad
    m_{ab} = \frac{1}{|Q_a|} \sum_{q \in Q_a} \sum_{g: B(g) = b} p(g \mid q) = t_{ab}.

This is entropic optimal transport with the column marginal constrained per group: each row is
a softmax (the row step) and the grouped column step is ``c_{ab} ← c_{ab} + τ log(m_{ab} /
t_{ab})`` — Sinkhorn on the grouped marginal. Its fixed point minimises a convex dual; we reach
it by Newton steps (a handful, where the plain update needs thousands at ``τ = 0.02``), to
``max |log(m/t)| < tol``. Only ``log Σ_{g ∈ b} exp(s(q, g)/τ)`` (``[|B_q|, groups]``,
blockwise) enters the solve, so each step costs ``O(|B_q| · groups²)``.

Targets. ``"relevant"``: ``t_{ab}`` = share of group ``b`` among the relevant gallery rows (same
``item``) of group-``a`` bank queries — a query that asks for a culture still prefers it, only
the average language→culture preference goes. ``"gallery"``: the gallery bank's group mix (the
image→text default: one offset per caption language, target = the gallery's language mix).
Targets are floored at 1e-4 and renormalised, so a group is never priced out entirely.

Defaults (``"auto"``), resolved at ``fit`` from the gallery bank's modality:
images → ``query_group="language"``, ``gallery_group="culture"``, ``target="relevant"``;
texts → ``query_group=None`` (one group), ``gallery_group="language"``, ``target="gallery"``.

Offset form: ``v(g) = onehot(B(g))``, ``u(q) = −c_{A(q), :}``, ``scale = 1/τ``. With soft labels
(a group inferred by a classifier, :mod:`xcm_debias.soft_labels`) the one-hot vectors become the
rows' posteriors ``p(g)``, ``p(q)``: the offset ``−p(q)ᵀ c p(g)`` is the posterior-weighted
offset, still exact on any inner-product index.

Needs the query group label on queries (e.g. ``language``) and the gallery group label on
gallery rows (e.g. ``culture``) at fit; at search a row may carry it or have it inferred. A
group unseen in calibration gets no offset (zero weights) and an ``UnseenGroupWarning``. When
no calibration row carries a group label at all (a corpus without ``culture``), the stage is
skipped: it fits as a no-op with ``fitted_meta["skipped"]`` saying why (and a UserWarning).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.scoring._blockwise import group_logsumexp_scores
from xcm_debias.scoring._groups import (
    absent_label,
    group_labels,
    group_weights,
    skipped_stage,
)
from xcm_debias.scoring.base import (
    GalleryColumns,
    ScoredRows,
    ScoreNormalizer,
    check_positive_float,
)

TARGETS = ("auto", "relevant", "gallery")
MIN_TARGET_SHARE = 1e-4


class GroupBalance(ScoreNormalizer):
    """Per (query group, gallery group) offsets that balance soft top-1 mass to target shares.

    Args:
        temperature: τ of the soft top-1 (and the Sinkhorn step), in cosine units.
        query_group: label naming the query groups (``"language"``), None for one group, or
            ``"auto"`` (see the module docstring).
        gallery_group: label naming the gallery groups (``"culture"``, ``"language"``) or
            ``"auto"``.
        target: ``"relevant"``, ``"gallery"`` or ``"auto"``.
        max_iter: Newton steps at most (a RuntimeWarning says when it stopped early).
        tol: stop when ``max |log(m/t)| < tol``.
        block_size: tile edge of the blockwise products.
    """

    def __init__(
        self,
        temperature: float = 0.02,
        query_group: str | None = "auto",
        gallery_group: str = "auto",
        target: str = "auto",
        max_iter: int = 2000,
        tol: float = 1e-4,
        block_size: int = 4096,
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.query_group = query_group
        self.gallery_group = gallery_group
        self.target = target
        self.max_iter = max_iter
        self.tol = tol
        self.block_size = block_size

    @property
    def scale(self) -> float:
        return 1.0 / float(self.temperature)

    def _check_params(self) -> None:
        super()._check_params()
        self.temperature = check_positive_float(self.temperature, "temperature")
        self.tol = check_positive_float(self.tol, "tol")
        self.max_iter = check_positive_int(self.max_iter, "max_iter")
        if self.query_group is not None and not isinstance(self.query_group, str):
            raise TypeError(f"query_group: expected a label name or None, got {self.query_group!r}")
        if not isinstance(self.gallery_group, str):
            raise TypeError(f"gallery_group: expected a label name, got {self.gallery_group!r}")
        if self.target not in TARGETS:
            raise ValueError(f"target: expected one of {TARGETS}, got {self.target!r}")

    # ------------------------------------------------------------------ fit
    def _resolve(self, gallery_bank: EmbeddingSet) -> tuple[str | None, str, str]:
        modalities = sorted(set(gallery_bank.modality.tolist()))
        auto = "auto" in (self.query_group, self.gallery_group, self.target)
        if auto and len(modalities) != 1:
            raise ValueError(
                f"GroupBalance(...='auto'): expected gallery_bank rows of one modality, got "
                f"{modalities}; name query_group, gallery_group and target explicitly"
            )
        images = modalities == ["image"]
        query_group = self.query_group
        if query_group == "auto":
            query_group = "language" if images else None
        gallery_group = self.gallery_group
        if gallery_group == "auto":
            gallery_group = "culture" if images else "language"
        target = self.target
        if target == "auto":
            target = "relevant" if images else "gallery"
        return query_group, gallery_group, target

    def _fit(self, query_bank: ScoredRows, gallery_bank: ScoredRows) -> None:
        query_group, gallery_group, target = self._resolve(gallery_bank.data)
        self.fitted_meta.update(query_group=query_group, gallery_group=gallery_group, target=target)
        for bank, label in ((query_bank, query_group), (gallery_bank, gallery_group)):
            if absent_label(bank.data, label):
                self.set_state("offsets", torch.zeros(0, 0))
                self.fitted_meta.update(
                    query_groups=[],
                    gallery_groups=[],
                    skipped=skipped_stage("GroupBalance", label, bank.data),
                )
                return
        q_labels = group_labels(query_bank.data, query_group, "GroupBalance", "query_bank")
        g_labels = group_labels(gallery_bank.data, gallery_group, "GroupBalance", "gallery_bank")
        q_names, q_idx = np.unique(q_labels, return_inverse=True)
        g_names, g_idx = np.unique(g_labels, return_inverse=True)
        if target == "relevant":
            targets = _relevant_shares(
                query_bank.data,
                q_idx,
                len(q_names),
                gallery_bank.data,
                g_idx,
                len(g_names),
                q_names,
            )
        else:
            shares = np.bincount(g_idx, minlength=len(g_names)) / len(g_idx)
            targets = np.tile(shares, (len(q_names), 1))
        targets = np.maximum(targets, MIN_TARGET_SHARE)
        targets = targets / targets.sum(axis=1, keepdims=True)
        log_s = group_logsumexp_scores(
            query_bank.augmented,
            gallery_bank.augmented,
            torch.from_numpy(g_idx.astype(np.int64)),
            len(g_names),
            self.scale,
            self.block_size,
        )
        offsets, iterations, error = _balance(
            log_s.double(),
            torch.from_numpy(q_idx.astype(np.int64)),
            torch.from_numpy(targets),
            self.temperature,
            self.max_iter,
            self.tol,
        )
        if error >= self.tol:
            warnings.warn(
                f"GroupBalance: stopped after max_iter={self.max_iter} iterations with "
                f"max |log(mass/target)| = {error:.3g} >= tol={self.tol}; raise max_iter or "
                "temperature",
                RuntimeWarning,
                stacklevel=3,
            )
        self.set_state("offsets", offsets.float())
        self.fitted_meta.update(
            query_groups=q_names.tolist(),
            gallery_groups=g_names.tolist(),
            targets=targets.tolist(),
            iterations=iterations,
            max_log_ratio=error,
        )

    # ---------------------------------------------------------------- apply
    def _gallery_columns(self, gallery: ScoredRows) -> GalleryColumns:
        if "skipped" in self.fitted_meta:
            return GalleryColumns(columns=torch.zeros(len(gallery.data), 0))
        names = self.fitted_meta["gallery_groups"]
        weights = group_weights(
            gallery.data, self.fitted_meta["gallery_group"], names, "GroupBalance", "gallery"
        )
        return GalleryColumns(columns=weights)

    def _query_columns(
        self, queries: ScoredRows, gallery_columns: GalleryColumns, top1: torch.Tensor | None
    ) -> torch.Tensor:
        if "skipped" in self.fitted_meta:
            return torch.zeros(len(queries.data), 0)
        names = self.fitted_meta["query_groups"]
        weights = group_weights(
            queries.data, self.fitted_meta["query_group"], names, "GroupBalance", "queries"
        )
        return -(weights @ self.offsets)


def _relevant_shares(
    queries: EmbeddingSet,
    q_idx: np.ndarray,
    n_query_groups: int,
    gallery: EmbeddingSet,
    g_idx: np.ndarray,
    n_gallery_groups: int,
    query_names: np.ndarray,
) -> np.ndarray:
    """``t[a, b]`` = mean over group-``a`` queries of group ``b``'s share of their relevant rows."""
    items, g_item = np.unique(gallery.item, return_inverse=True)
    counts = np.zeros((len(items), n_gallery_groups))
    np.add.at(counts, (g_item, g_idx), 1.0)
    position = np.searchsorted(items, queries.item)
    found = (position < len(items)) & (items[np.minimum(position, len(items) - 1)] == queries.item)
    shares = np.zeros((len(queries), n_gallery_groups))
    rows = counts[position[found]]
    shares[found] = rows / rows.sum(axis=1, keepdims=True)
    totals = np.zeros((n_query_groups, n_gallery_groups))
    np.add.at(totals, q_idx[found], shares[found])
    n = np.bincount(q_idx[found], minlength=n_query_groups)
    if (n == 0).any():
        missing = [str(query_names[i]) for i in np.flatnonzero(n == 0)]
        raise ValueError(
            f"GroupBalance(target='relevant'): no bank query of group(s) {missing} has a "
            "relevant gallery row (same item) in calibration; use target='gallery' or add "
            "matching items"
        )
    return totals / n[:, None]


def _balance(
    log_s: torch.Tensor,
    q_idx: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    max_iter: int,
    tol: float,
) -> tuple[torch.Tensor, int, float]:
    r"""Offsets ``c`` with soft top-1 mass = targets; returns ``(c, iterations, max |log(m/t)|)``.

    ``log_s[i, b] = log Σ_{g ∈ b} exp(s(q_i, g)/τ)``. The Sinkhorn fixed point
    ``c_ab ← c_ab + τ log(m_ab / t_ab)`` is the minimiser of the convex dual, per query group,

    .. math:: f_a(c) = \frac{τ}{|Q_a|} \sum_{q \in Q_a} \log \sum_b
        \exp(\log S_{qb} - c_b/τ) + \sum_b t_{ab} c_b, \qquad ∇f_a = t_a - m_a,

    found here by Newton steps with backtracking (Hessian ``(diag(m_a) − E_q[p pᵀ])/τ``), which
    converge in a few steps where the plain Sinkhorn update needs thousands at small ``τ``. The
    gauge ``Σ_b t_ab c_ab = 0`` fixes the per-row constant that no ranking sees.
    """
    n_groups, width = targets.shape
    counts = torch.bincount(q_idx, minlength=n_groups).double()
    # per-group means as products with the normalised one-hot matrix (one GEMM, no scatter)
    weights = torch.nn.functional.one_hot(q_idx, n_groups).to(log_s.dtype) / counts

    def evaluate(offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = log_s - offsets[q_idx] / temperature
        lse = torch.logsumexp(logits, dim=1)
        p = torch.exp(logits - lse[:, None])
        mass = weights.T @ p
        objective = temperature * (weights.T @ lse) + (targets * offsets).sum(dim=1)
        return objective, mass, p

    offsets = torch.zeros_like(targets)
    objective, mass, p = evaluate(offsets)
    ones = torch.ones(width, width, dtype=log_s.dtype)
    eye = torch.eye(width, dtype=log_s.dtype)
    for iteration in range(max_iter):
        log_ratio = torch.log(mass.clamp_min(1e-300) / targets)
        error = float(log_ratio.abs().max())
        if error < tol:
            return offsets, iteration, error
        gradient = targets - mass
        outer = torch.einsum("qa,qi,qj->aij", weights, p, p)
        hessian = (torch.diag_embed(mass) - outer) / temperature
        # gradients are orthogonal to 1 (the gauge direction), so adding α·11ᵀ leaves the step
        # on 1⊥ unchanged; a tiny ridge keeps the system definite when some mass vanishes
        scale = hessian.diagonal(dim1=1, dim2=2).mean(dim=1)[:, None, None]
        system = hessian + (scale + 1e-12) * ones + (1e-9 * scale + 1e-12) * eye
        step = -torch.linalg.solve(system, gradient)
        decrease = (gradient * step).sum(dim=1)
        length = torch.ones(n_groups, dtype=log_s.dtype)
        for _ in range(40):
            trial = offsets + length[:, None] * step
            accepted = evaluate(trial)[0] <= objective + 1e-4 * length * decrease
            if bool(accepted.all()):
                break
            length = torch.where(accepted, length, length / 2)
        # a group whose Newton step found no decrease takes the plain Sinkhorn step
        offsets = torch.where(accepted[:, None], trial, offsets + temperature * log_ratio)
        offsets = offsets - (offsets * targets).sum(dim=1, keepdim=True)
        objective, mass, p = evaluate(offsets)
    final = torch.log(mass.clamp_min(1e-300) / targets)
    return offsets, max_iter, float(final.abs().max())
