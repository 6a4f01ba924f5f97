"""A linear map fitted with a retrieval criterion (InfoNCE), started from the ridge map.

Least squares pulls each caption toward its target but does not ask that it be *closer to its
own target than to the others*, which is what retrieval needs. For captions ``X`` (rows) of one
language with item codes ``c_i`` and unit targets ``t̂_j`` (one per item), the InfoNCE loss of a
map ``W`` is

    L(W) = (1/n) Σ_i [ −s_{i,c_i} + log Σ_j exp s_ij ],   s_ij = ẑ_i · t̂_j / τ,   ẑ_i = x_i W / ‖x_i W‖

(van den Oord, Li, Vinyals, *Representation Learning with Contrastive Predictive Coding*, 2018;
the CLIP loss of Radford et al., ICML 2021, one direction). Fitting a cross-lingual map with a
retrieval criterion instead of least squares is RCSLS (Joulin, Bojanowski, Mikolov, Jégou,
Grave, *Loss in Translation: Learning Bilingual Word Mapping with a Retrieval Criterion*, EMNLP
2018). ``W`` starts at the ridge map ``W₀`` and takes full-batch Adam steps (Kingma & Ba, 2015;
``torch.optim.Adam`` defaults, float32); the number of steps is the regulariser, chosen on
held-out items by :func:`contrastive_steps` (0 steps keeps the ridge map), which stops once the
held-out loss has not improved for ``PATIENCE`` checks in a row.
"""

from __future__ import annotations

import numpy as np
import torch

OPT_DTYPE = torch.float32
PATIENCE = 3


def info_nce(
    x: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, codes: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``L(W)`` of the module docstring: rows ``x``, unit ``targets`` ``[m, d]``, ``codes`` in
    ``[0, m)`` naming each row's target."""
    z = torch.nn.functional.normalize(x @ w, dim=1)
    return torch.nn.functional.cross_entropy(z @ targets.T / temperature, codes)


def _item_targets(
    targets: torch.Tensor, row_items: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit targets of the distinct items of ``row_items`` and each row's index among them.

    ``targets`` holds one row per calibration row (the row's item target)."""
    _, first, codes = np.unique(row_items, return_index=True, return_inverse=True)
    unit = torch.nn.functional.normalize(targets[torch.from_numpy(first)].to(OPT_DTYPE), dim=1)
    return unit, torch.from_numpy(codes.reshape(-1).astype(np.int64))


def contrastive_steps(
    x: torch.Tensor,
    targets: torch.Tensor,
    row_items: np.ndarray,
    w0: torch.Tensor,
    temperature: float,
    learning_rate: float,
    n_steps: int,
    every: int = 0,
    held_out: tuple[torch.Tensor, torch.Tensor, np.ndarray] | None = None,
) -> tuple[torch.Tensor, list[float]]:
    """``W`` after ``n_steps`` full-batch Adam steps on ``L`` from ``w0``, and held-out losses.

    ``targets`` has one row per row of ``x`` (its item's target); rows of the same item share
    one target, and the other items' targets are the negatives. With ``held_out = (x, targets,
    row_items)`` of other items, their ``L`` (their own items' targets as the candidates) is
    recorded every ``every`` steps from step 0, and the steps stop ``PATIENCE`` checks after the
    last new minimum (the argmin is then final). Returns the map (in ``x``'s dtype) and the
    held-out losses (empty without ``held_out``)."""
    unit, codes = _item_targets(targets, row_items)
    xf = x.to(OPT_DTYPE)
    check = None
    if held_out is not None:
        h_unit, h_codes = _item_targets(held_out[1], held_out[2])
        check = (held_out[0].to(OPT_DTYPE), h_unit, h_codes)
    losses: list[float] = []
    with torch.enable_grad():  # PostProcessor.fit runs under no_grad
        w = w0.to(OPT_DTYPE).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([w], lr=learning_rate)
        for step in range(n_steps + 1):
            if check is not None and step % every == 0:
                with torch.no_grad():
                    losses.append(float(info_nce(check[0], w, check[1], check[2], temperature)))
                if len(losses) - 1 - int(np.argmin(losses)) >= PATIENCE:
                    break
            if step == n_steps:
                break
            optimizer.zero_grad()
            info_nce(xf, w, unit, codes, temperature).backward()
            optimizer.step()
    return w.detach().to(x.dtype), losses


__all__ = ["PATIENCE", "contrastive_steps", "info_nce"]
