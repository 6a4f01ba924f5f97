"""InvGC: inverse graph convolution on gallery embeddings, against hubness.

Multi-modal embeddings crowd in a narrow cone (representation degeneration); InvGC pushes each
gallery embedding g away from its neighbours in two banks of calibration embeddings — the
gallery bank ``B_g`` (calibration rows of g's modality) and the query bank ``B_q`` (calibration
rows of the other modality) — by subtracting a graph convolution (Jian & Wang, EMNLP 2023):

* full adjacency:  ``m_B(g) = normalize(g − r · Σ_j (s(g, b_j) − s̄_B) b_j / |B|)``;
* LocalAdj (``local_adj=True``, default): only each row's ``p = max(1, int(pool_rate·|B|))`` most similar
  bank rows: ``m_B(g) = normalize(g − r · Σ_{j∈top_p(g)} s(g, b_j) b_j / p)``;

once against ``B_g`` (rate ``r_g``) and once against ``B_q`` (rate ``r_q``), and
``g' = normalize(½ m_{B_g}(g) + ½ m_{B_q}(g))``, with ``s(g, b) = g·b``.

Compared with the reference code (yimuwangcs/Better_Cross_Modal_Retrieval ``InvGC/InvGC.py``):
the full variant is computed as ``g − r·(g·G_B − s̄_B·b̄_B)`` with the ``d × d`` second moment
``G_B = BᵀB/|B|`` and the bank mean ``b̄_B`` — no ``N × |B|`` matrix; ``s̄_B`` is fixed at fit as
the mean similarity between calibration gallery rows and ``B`` (``b̄_{B_g}·b̄_B``), whereas the
reference averages over the similarities of the rows being transformed (the two agree when the
transformed rows are the calibration gallery), so a row's output never depends on its batch.
LocalAdj neighbours come from ``xcm_debias.topk.blockwise_topk`` and the weighted sum from
``embedding_bag``, block by block; the reference builds the dense matrix and loops over rows, and
uses ``p = int(pool_rate·|B|)`` — the same ``p`` as ours wherever it is at least 1 (the same float
expression, so results match the reference); for banks under ``1/pool_rate`` rows the reference
divides by zero and we keep one neighbour.

Gallery-side: ``apply_to`` names the gallery modality (default images, for text→image search);
rows of each modality in ``apply_to`` use their own modality's bank as ``B_g`` and the other
modality's as ``B_q``. Needs no labels besides ``modality``. Rows are L2-normalised first
(``normalize=True``); outputs are unit-norm float32.

Reference:
    Jian & Wang, "InvGC: Robust cross-modal retrieval by inverse graph convolution", Findings
    of EMNLP 2023.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.data import MODALITIES, EmbeddingSet
from xcm_debias.processors import _stats
from xcm_debias.processors.base import PostProcessor
from xcm_debias.topk import blockwise_topk


def _other(modality: str) -> str:
    return "text" if modality == "image" else "image"


def _unit_rows_(x: torch.Tensor) -> torch.Tensor:
    """``x`` (a tensor of ours, never a caller's) scaled in place to unit rows, as
    ``torch.nn.functional.normalize`` computes them."""
    return x.div_(torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min_(1e-12))


class InvGC(PostProcessor):
    """Inverse graph convolution of gallery rows against calibration gallery and query banks.

    Args:
        r_g: rate of the convolution against the gallery bank.
        r_q: rate of the convolution against the query bank.
        pool_rate: LocalAdj neighbourhood, as a share of the bank (``p = max(1, int(pool_rate·|B|))``, as the reference).
        local_adj: LocalAdj (top-p neighbours, default) or the full, mean-centred adjacency.
        apply_to: the gallery modality(ies) to transform (default ``("image",)``).
        block_size: rows per block for neighbour search and products.
        normalize: L2-normalise rows before fitting and transforming.

    Labels: only ``modality``; calibration needs rows of both modalities.
    """

    def __init__(
        self,
        r_g: float = 0.1,
        r_q: float = 0.1,
        pool_rate: float = 0.01,
        local_adj: bool = True,
        apply_to: Sequence[str] = ("image",),
        block_size: int = 4096,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.r_g = r_g
        self.r_q = r_q
        self.pool_rate = pool_rate
        self.local_adj = local_adj
        self.apply_to = tuple(apply_to) if not isinstance(apply_to, str) else (apply_to,)
        self.block_size = block_size
        self.normalize = normalize

    def _who(self, step: str) -> str:
        return f"InvGC(local_adj={self.local_adj}).{step}"

    def _fit(self, calibration: EmbeddingSet) -> None:
        who = self._who("fit")
        for name in ("r_g", "r_q"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ValueError(f"{who}: {name}: expected a finite number, got {value!r}")
        if (
            isinstance(self.pool_rate, bool)
            or not isinstance(self.pool_rate, (int, float))
            or not 0 < self.pool_rate <= 1
        ):
            raise ValueError(
                f"{who}: pool_rate: expected a number in (0, 1], got {self.pool_rate!r}"
            )
        check_positive_int(self.block_size, f"{who}: block_size")
        for modality in MODALITIES:
            if not (calibration.modality == modality).any():
                raise ValueError(
                    f"{who}: expected calibration rows of both modalities (gallery and query "
                    f"banks), got no {modality} rows"
                )
        banks = {
            m: _stats.prepare(
                calibration.where(modality=m).embeddings, self.normalize, torch.float32
            )
            for m in MODALITIES
        }
        meta: dict[str, int] = {}
        for m in MODALITIES:
            bank = banks[m]
            meta[f"pool_{m}"] = max(1, int(self.pool_rate * len(bank)))
            if self.local_adj:
                self.set_state(f"bank_{m}", bank)
            else:
                bank64 = bank.double()
                self.set_state(f"moment_{m}", (bank64.T @ bank64 / len(bank)).float())
                self.set_state(f"mean_{m}", bank64.mean(dim=0).float())
        self.fitted_meta = meta

    def forward(self, x: torch.Tensor, data: EmbeddingSet) -> torch.Tensor:
        x = _stats.prepare(x, self.normalize, torch.float32)
        out = None
        for m in self.apply_to:
            mask = data.modality == m
            if not mask.any():
                continue
            whole = bool(mask.all())
            rows = None if whole else torch.from_numpy(mask).nonzero().flatten()
            g = x if whole else x[rows]
            # normalize(½ m_g + ½ m_q) = normalize(m_g + m_q), summed in place (gallery-sized
            # temporaries are what bounds memory at scale)
            combined = self._message(g, m, m, float(self.r_g))
            combined.add_(self._message(g, m, _other(m), float(self.r_q)))
            combined = _unit_rows_(combined)
            if whole:
                return combined
            if out is None:
                out = torch.empty_like(x)
            out[rows] = combined
        assert out is not None  # transform passes only rows of apply_to
        return out

    def _message(self, g: torch.Tensor, gallery: str, bank: str, rate: float) -> torch.Tensor:
        """``normalize(g − rate · A(g) B)`` for the adjacency of ``g`` against bank ``bank``."""
        if not self.local_adj:
            moment = getattr(self, f"moment_{bank}")
            bank_mean = getattr(self, f"mean_{bank}")
            mean_sim = getattr(self, f"mean_{gallery}") @ bank_mean  # s̄ = b̄_gallery · b̄_bank
            return _unit_rows_(g - rate * (g @ moment - mean_sim * bank_mean))
        rows = getattr(self, f"bank_{bank}")
        p = self.fitted_meta[f"pool_{bank}"]
        out = torch.empty_like(g)
        for start in range(0, len(g), self.block_size):
            block = g[start : start + self.block_size]
            idx, sims = blockwise_topk(block, rows, p, self.block_size)
            # Σ_{j∈top_p} s(g, b_j) b_j without an N × |B| matrix: a weighted bag of bank rows
            pooled = torch.nn.functional.embedding_bag(
                idx, rows, per_sample_weights=sims, mode="sum"
            )
            out[start : start + len(block)] = pooled.mul_(-rate / p).add_(block)  # g − r·Σ/p
        return _unit_rows_(out)


__all__ = ["InvGC"]
