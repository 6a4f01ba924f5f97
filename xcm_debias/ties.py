"""Deterministic ties for duplicate gallery rows: lower index first, whatever the kernel.

Equal gallery rows must score equally, but a float32 product is not a function of the two
vectors alone: BLAS picks a different kernel (and summation order) for a 1-column tile than for
a 4096-column one, and faiss has its own, so identical rows can score one ulp apart and rank
by tile layout (``[9, 0, 1]`` instead of ``[0, 1, 2]``). The retrievers therefore score each
*distinct* row once (:func:`duplicate_rows` finds the groups of equal rows) and expand the
ranking back with :func:`expand_topk`: every member of a group gets its group's score, and
rows of equal score come by lower gallery index. Galleries without duplicates (the usual case)
take a single cheap check and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_KEY_COLUMNS = 8  # columns (spread over the row) whose bytes form the cheap first-pass key
#: an integer dtype of each element size, to read entries' bytes whatever the float dtype
_SAME_SIZE_INTEGER = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass(frozen=True)
class DuplicateRows:
    """Groups of equal rows of a matrix with ``N`` rows, ``U < N`` of them distinct.

    Attributes:
        first: ``[U]`` int64, the lowest row index of each group, ascending.
        group: ``[N]`` int64, the group of each row (a position in ``first``).
        sizes: ``[U]`` int64 rows per group.
        members: ``[N]`` int64 row indices sorted by (group, index).
        starts: ``[U]`` int64 offset of each group's members in ``members``.
    """

    first: torch.Tensor
    group: torch.Tensor
    sizes: torch.Tensor
    members: torch.Tensor
    starts: torch.Tensor

    @property
    def n_rows(self) -> int:
        return int(self.group.shape[0])


def duplicate_rows(x: torch.Tensor) -> DuplicateRows | None:
    """The groups of bitwise-equal rows of ``x`` (``[N, D]``), or None when all are distinct.

    A key of a few spread columns' bytes finds candidate rows in one sort of ``N`` keys; only
    rows whose key repeats are compared in full.
    """
    rows = x.detach().cpu().contiguous()
    n = rows.shape[0]
    if n < 2:
        return None
    raw = rows.view(torch.uint8).numpy().reshape(n, -1) if rows.numel() else None
    if raw is None:
        return None
    cols = np.unique(np.linspace(0, rows.shape[1] - 1, _KEY_COLUMNS).astype(np.int64))
    # the key columns' bytes, gathered as whole entries (an integer view of the same bytes):
    # three times faster than gathering their bytes one by one
    entries = rows.view(_SAME_SIZE_INTEGER[rows.element_size()]).numpy()
    key_bytes = np.ascontiguousarray(entries[:, cols]).view(np.uint8).reshape(n, -1)
    if not _repeated(_hash_rows(key_bytes)):  # the usual case: one sort of N integers
        return None
    key = key_bytes.view(np.dtype((np.void, key_bytes.shape[1]))).ravel()
    _, key_inverse, key_counts = np.unique(key, return_inverse=True, return_counts=True)
    candidates = np.flatnonzero(key_counts[key_inverse.ravel()] > 1)
    if len(candidates) == 0:
        return None
    equal_to = _lowest_equal_rows(raw if len(candidates) == n else raw[candidates])
    if (equal_to == np.arange(len(candidates))).all():
        return None
    # representative of every row: itself, or the lowest equal candidate
    representative = np.arange(n)
    representative[candidates] = candidates[equal_to]
    first, group = np.unique(representative, return_inverse=True)
    group = group.ravel()
    sizes = np.bincount(group, minlength=len(first))
    members = np.lexsort((np.arange(n), group))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return DuplicateRows(
        first=torch.from_numpy(first.astype(np.int64)),
        group=torch.from_numpy(group.astype(np.int64)),
        sizes=torch.from_numpy(sizes.astype(np.int64)),
        members=torch.from_numpy(members.astype(np.int64)),
        starts=torch.from_numpy(starts.astype(np.int64)),
    )


def _lowest_equal_rows(raw: np.ndarray) -> np.ndarray:
    """For each row of ``raw`` (``[m, B]`` bytes), the position of the first row equal to it.

    Rows are grouped by a 64-bit hash of their bytes (each 8-byte word mixed, then a weighted
    sum modulo 2^64), then every row is
    compared in full with its group's first row; should two different rows ever share a hash,
    an exact (slower) sort of the rows' bytes decides instead.
    """
    m, width = raw.shape
    hashes = _hash_rows(raw)
    chunk = max(1, (1 << 22) // max(width, 1))
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    equal_to = first[inverse.ravel()]
    if all(
        (raw[start : start + chunk] == raw[equal_to[start : start + chunk]]).all()
        for start in range(0, m, chunk)
    ):
        return equal_to
    full = np.ascontiguousarray(raw).view(np.dtype((np.void, width))).ravel()
    _, first, inverse = np.unique(full, return_index=True, return_inverse=True)
    return first[inverse.ravel()]


def _hash_rows(raw: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of bytes ``raw`` (``[n, B]``): equal rows hash equally."""
    m, width = raw.shape
    if width % 8 == 0:
        words = np.ascontiguousarray(raw).view(np.uint64)
    else:
        words = np.zeros((m, -(-width // 8) * 8), dtype=np.uint8)
        words[:, :width] = raw
        words = words.view(np.uint64)
    weights = np.random.default_rng(0).integers(1, 2**63, words.shape[1], dtype=np.uint64) | 1
    hashes = np.empty(m, dtype=np.uint64)
    chunk = max(1, (1 << 22) // words.shape[1])
    with np.errstate(over="ignore"):
        for start in range(0, m, chunk):
            part = _mix(words[start : start + chunk]) * weights  # wraps modulo 2^64
            hashes[start : start + chunk] = part.sum(axis=1, dtype=np.uint64)
    return hashes


def _repeated(values: np.ndarray) -> bool:
    """Whether any value occurs twice."""
    ordered = np.sort(values)
    return bool((ordered[1:] == ordered[:-1]).any())


def _mix(words: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on every word: float words end in many zero bits, which a plain
    multiplication would keep (and collide on)."""
    x = words ^ (words >> np.uint64(30))
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def order_ties(indices: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A best-first ranking with equal scores put in increasing index order (new tensors).

    Only the rows holding a repeated score are sorted.
    """
    indices, scores = indices.clone(), scores.clone()
    rows = (scores[:, 1:] == scores[:, :-1]).any(dim=1).nonzero().flatten()
    if len(rows):
        by_index = torch.sort(indices[rows], dim=1, stable=True)
        tied = torch.gather(scores[rows], 1, by_index.indices)
        by_score = torch.sort(tied, dim=1, descending=True, stable=True)
        indices[rows] = torch.gather(by_index.values, 1, by_score.indices)
        scores[rows] = by_score.values
    return indices, scores


def expand_topk(
    groups: DuplicateRows, indices: torch.Tensor, scores: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-``k`` rows of the full matrix from the top groups of its distinct rows.

    ``indices``/``scores`` (``[Q, k']``) rank group numbers (positions in ``groups.first``)
    best first, ties by lower first index, with ``k' = min(k, U)``. Each group stands for all
    its members; rows of equal score are put in increasing index order. Returns ``[Q, min(k,
    N)]`` row indices and scores.
    """
    q, kk = indices.shape
    k_out = min(k, groups.n_rows)
    sizes = groups.sizes[indices]  # [Q, k']
    before = sizes.cumsum(dim=1) - sizes  # rows of the better groups
    # groups count while the better ones hold fewer than k rows, and so do the groups that tie
    # with the last of those (their lower-index members may come first); each with up to k
    needed = before < k_out
    last = needed.sum(dim=1, keepdim=True) - 1
    needed |= scores == torch.gather(scores, 1, last)
    take = torch.where(needed, sizes.clamp(max=k_out), torch.zeros_like(sizes))
    flat_take = take.reshape(-1)
    entry_query = torch.arange(q).repeat_interleave(take.sum(dim=1))
    entry_group = indices.reshape(-1).repeat_interleave(flat_take)
    entry_score = scores.reshape(-1).repeat_interleave(flat_take)
    offsets = torch.arange(len(entry_group)) - (flat_take.cumsum(0) - flat_take).repeat_interleave(
        flat_take
    )
    entry_row = groups.members[groups.starts[entry_group] + offsets]
    # order: query, then score descending, then row index (stable sorts, last key first)
    order = torch.sort(entry_row, stable=True).indices
    order = order[torch.sort(entry_score[order], descending=True, stable=True).indices]
    order = order[torch.sort(entry_query[order], stable=True).indices]
    counts = take.sum(dim=1)
    position = torch.arange(len(order)) - (counts.cumsum(0) - counts).repeat_interleave(counts)
    keep = position < k_out
    out_i = entry_row[order][keep].reshape(q, k_out)
    out_v = entry_score[order][keep].reshape(q, k_out)
    return out_i, out_v


def rows_ahead_in_groups(
    groups: DuplicateRows,
    queries: torch.Tensor,
    tied_groups: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """For pairs (query ``queries[j]``, group ``tied_groups[j]``) whose score equals the
    query's target score: how many members of the group have an index below the target's."""
    n = groups.n_rows
    keys = groups.group[groups.members] * n + groups.members  # sorted ascending
    wanted = tied_groups * n + targets[queries]
    return torch.searchsorted(keys, wanted) - groups.starts[tied_groups]
