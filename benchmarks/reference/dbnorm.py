"""Inverted softmax, QB-Norm and DBNorm as published: dense numpy matrices, a Python row loop.

``IS``: ``exp(β S_test) / Σ_bank exp(β S_bank)`` column-wise, on the dense test query×gallery
matrix and the dense bank×gallery matrix. ``qb_norm``: the activation set from a full argsort
of every bank row, each test row's top-1 from a full argsort, membership tested row by row in
Python, the selected rows normalised. ``db_norm``: the product of the query-bank and the
gallery-bank normalisations, each applied to the test query×gallery matrix (the paper's
formula; the published line passes the bank matrix to the first one).
"""

from __future__ import annotations

import numpy as np


def _activation_set(bank_test: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-bank_test, axis=1)
    return np.unique(order[:, :k].reshape(-1))


def _rows_to_normalize(test: np.ndarray, active: np.ndarray) -> np.ndarray:
    top1 = np.argsort(-test, axis=1)[:, 0]
    inside = np.array([x in active for x in top1])  # the published per-row membership test
    return np.nonzero(inside)


def inverted_softmax(bank_test: np.ndarray, test: np.ndarray, beta: float) -> np.ndarray:
    return np.exp(test * beta) / np.sum(np.exp(bank_test * beta), axis=0)


def qb_norm(bank_test: np.ndarray, test: np.ndarray, beta: float, k: int = 1) -> np.ndarray:
    active = _activation_set(bank_test, k)
    out = test.copy()
    selected = _rows_to_normalize(test, active)
    normalizing_sum = np.sum(np.exp(bank_test * beta), axis=0)
    out[selected, :] = np.exp(test[selected, :] * beta) / normalizing_sum
    return out


def db_norm(
    query_bank_test: np.ndarray,
    gallery_bank_test: np.ndarray,
    test: np.ndarray,
    beta1: float,
    beta2: float,
) -> np.ndarray:
    """Dual inverted softmax (static): query-bank factor × gallery-bank factor."""
    return inverted_softmax(query_bank_test, test, beta1) * inverted_softmax(
        gallery_bank_test, test, beta2
    )
