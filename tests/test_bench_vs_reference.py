"""benchmarks/vs_reference.py's tie check: the float64 scores it decides ties with reproduce
both sides' rankings, and the swap gap counts exactly the pairs two lists order differently."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _data  # noqa: E402
import vs_reference  # noqa: E402


def _scores(table: dict[int, float]):
    return lambda items: np.array([table[int(i)] for i in items])


def test_swap_gap_of_equal_lists_is_zero():
    row = np.array([4, 1, 7])
    assert vs_reference._swap_gap(row, row.copy(), _scores({1: 0.2, 4: 0.9, 7: 0.1})) == 0.0


def test_swap_gap_is_the_largest_gap_of_a_pair_ordered_differently():
    scores = _scores({1: 0.9, 2: 0.5, 3: 0.5 + 3e-8, 4: 0.1})
    # 2 and 3 swapped: only that pair is discordant
    assert vs_reference._swap_gap(np.array([1, 2, 3]), np.array([1, 3, 2]), scores) == (
        pytest.approx(3e-8, abs=1e-15)
    )
    # ref keeps 2, ours keeps 4 instead: (2, 4) discordant, gap 0.4; (1, ·) pairs agree
    assert vs_reference._swap_gap(np.array([1, 2]), np.array([1, 4]), scores) == (
        pytest.approx(0.4)
    )


def test_swap_gap_ignores_pairs_that_one_list_does_not_order():
    # 2 and 3 are both missing from ours, 4 and 5 both missing from ref: those pairs are not
    # ordered by that list, and both lists put 1 first; only (2|3, 4|5) pairs count, the
    # largest |0.0 − 0.5| (3 vs 4), although 2 vs 3 (0.9) and 1 vs 3 (1.0) are further apart
    scores = _scores({1: 1.0, 2: 0.9, 3: 0.0, 4: 0.5, 5: 0.45})
    gap = vs_reference._swap_gap(np.array([1, 2, 3]), np.array([1, 4, 5]), scores)
    assert gap == pytest.approx(0.5)


@pytest.mark.parametrize("method", ["invgc", "dis", "qb"])
def test_float64_scores_rank_as_both_sides(method, tmp_path, monkeypatch):
    monkeypatch.setattr(_data, "CACHE", tmp_path)
    p = {"n": 400, "queries": 60, "bank": 300, "dim": 32, "method": method}
    ref = vs_reference.case_reference(p)()
    ours = vs_reference.case_ours(p)()
    exact = vs_reference._float64_scores(p)
    gallery = np.arange(p["n"])
    for qi in range(p["queries"]):
        s = exact(qi, gallery)
        top = np.argsort(-s, kind="stable")[: vs_reference.K]
        table = dict(enumerate(s))
        for side in (ref, ours):
            assert vs_reference._swap_gap(side[qi], top, _scores(table)) < vs_reference.TIE_TOL
