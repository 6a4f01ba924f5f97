from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scoring_fixtures import multilingual_corpus, rankings, sims, unit_rows

from xcm_debias import EmbeddingSet, ExactRetriever
from xcm_debias.debiased import Debiased
from xcm_debias.scoring import ExposureShuffle, ScoreNormalizer
from xcm_debias.scoring.exposure_shuffle import _splitmix64, row_uniforms

LANGS = ("en", "de", "sw")
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def py_splitmix64(x: int) -> int:
    """SplitMix64's output for state ``x`` (Steele, Lea & Flood 2014), in Python integers."""
    z = (x + GOLDEN) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def py_uniforms(row: torch.Tensor, n: int, seed: int) -> list[float]:
    """The documented hash, one row at a time, from the leading 12 of each coordinate's float32
    bits (independent of numpy)."""
    words = struct.unpack(f"<{row.numel()}I", struct.pack(f"<{row.numel()}f", *row.tolist()))
    h = 0
    for j, word in enumerate(words):
        h = (h + py_splitmix64((word >> 20) ^ ((j * GOLDEN) & M64))) & M64
    h = py_splitmix64(h ^ seed)
    return [((py_splitmix64((h + (b + 1) * GOLDEN) & M64) >> 11) + 0.5) / 2.0**53 for b in range(n)]


def banks(seed: int = 0, n_items: int = 12) -> tuple[EmbeddingSet, EmbeddingSet]:
    corpus = multilingual_corpus(n_items=n_items, dim=10, languages=LANGS, seed=seed).normalized()
    return corpus.images, corpus.texts


def test_splitmix64_matches_the_published_first_output_for_seed_zero():
    assert int(_splitmix64(np.array([0], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF
    assert py_splitmix64(0) == 0xE220A8397B1DCDAF


def test_row_uniforms_equal_the_hash_written_row_by_row():
    rows = unit_rows(6, 5, seed=3)
    got = row_uniforms(rows, 4, seed=7).numpy()
    expected = np.array([py_uniforms(r, 4, 7) for r in rows])
    assert np.array_equal(got, expected)
    assert ((got > 0) & (got < 1)).all()


def test_equal_rows_get_equal_draws_and_another_seed_reshuffles():
    rows = unit_rows(3, 8, seed=0)
    twice = torch.cat([rows, rows.clone()])
    u = row_uniforms(twice, 5, seed=0)
    assert torch.equal(u[:3], u[3:])
    assert not torch.equal(u, row_uniforms(twice, 5, seed=1))


def test_scores_equal_the_dense_formula():
    queries, gallery = banks(seed=1)
    scorer = ExposureShuffle(width=0.3).fit(queries, gallery)
    names = scorer.fitted_meta["gallery_groups"]
    shares = np.array([np.mean(gallery.language == n) for n in names])
    keys = np.array([py_uniforms(r, len(names), 0) for r in queries.embeddings]) ** (1 / shares)
    group = np.searchsorted(names, gallery.language)
    expected = sims(queries, gallery) + 0.3 * keys[:, group]
    assert np.allclose(scorer.scores(queries, gallery).double().numpy(), expected, atol=1e-6)


def test_debiased_search_ranks_as_the_dense_formula():
    corpus = multilingual_corpus(n_items=20, dim=10, languages=LANGS, seed=4)
    calibration, test = corpus.split_items(test_size=0.5, seed=4)
    fair = Debiased(ExactRetriever(), scoring={"i2t": [ExposureShuffle(width=0.25)]})
    fair.fit(calibration)
    queries, gallery = test.images.normalized(), test.texts.normalized()
    dense = ExposureShuffle(width=0.25).fit(calibration.images, calibration.texts)
    expected = dense.scores(queries, gallery).numpy()
    ranking = fair.search(test.images, test.texts, len(gallery))
    assert np.array_equal(ranking.indices.numpy(), rankings(expected))


def test_auto_width_is_the_quantile_of_relevant_score_spreads():
    queries, gallery = banks(seed=2)
    s = sims(queries, gallery)
    relevant = queries.item[:, None] == gallery.item[None, :]
    spread = np.where(relevant, s, -np.inf).max(axis=1) - np.where(relevant, s, np.inf).min(axis=1)
    for q in (0.5, 0.9, 1.0):
        scorer = ExposureShuffle(tie_quantile=q).fit(queries, gallery)
        assert scorer.fitted_meta["width"] == pytest.approx(np.quantile(spread, q), abs=1e-6)


def test_last_bit_rounding_almost_never_reshuffles_a_query():
    # every coordinate nudged up by one float32 ulp (a BLAS rounding difference): a query
    # changes its draws only if a coordinate crosses one of the 8 steps per power of two of
    # the hashed bits, 1 coordinate in 2^20 — about 5 in 10 000 512-d queries (hashing all
    # 32 bits, every one)
    rows = unit_rows(2000, 512, seed=11)
    nudged = torch.nextafter(rows, torch.full_like(rows, 2.0))
    assert (nudged != rows).all()
    same = (row_uniforms(rows, 3, seed=0) == row_uniforms(nudged, 3, seed=0)).all(dim=1)
    assert same.float().mean() >= 0.99
    # while a change above the hashed bits reshuffles
    moved = rows * 1.3
    assert (row_uniforms(rows, 3, seed=0) != row_uniforms(moved, 3, seed=0)).any(dim=1).all()


def test_exact_ties_split_by_gallery_share():
    # every item's captions are one vector; English holds half the gallery, de and sw a quarter
    content = unit_rows(40, 16, seed=5)
    captions = torch.cat([content, content, content, content])
    language = ["en"] * 80 + ["de"] * 40 + ["sw"] * 40
    item = [f"i{i}" for i in range(40)] * 4
    gallery = EmbeddingSet(captions, modality="text", item=item, language=language)
    queries = EmbeddingSet(
        torch.nn.functional.normalize(
            content.repeat(100, 1) + 0.05 * unit_rows(4000, 16, seed=6), dim=1
        ),
        modality="image",
        item=item[:40] * 100,
    )
    scorer = ExposureShuffle(width=1e-3).fit(queries, gallery)
    top1 = scorer.scores(queries, gallery).argmax(dim=1).numpy()
    won = np.array(language)[top1]
    for lang, share in (("en", 0.5), ("de", 0.25), ("sw", 0.25)):
        se = np.sqrt(share * (1 - share) / len(won))
        assert abs(np.mean(won == lang) - share) < 4 * se
    assert (np.array(item)[top1] == np.array(queries.item)).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.floats(1e-4, 2.0))
def test_the_top1_is_never_more_than_width_below_the_best_raw_score(seed, width):
    queries, gallery = banks(seed=seed % 9, n_items=8)
    scorer = ExposureShuffle(width=width).fit(queries, gallery)
    raw = sims(queries, gallery)
    chosen = scorer.scores(queries, gallery).argmax(dim=1).numpy()
    assert (raw[np.arange(len(raw)), chosen] >= raw.max(axis=1) - width - 1e-6).all()


def test_save_load_and_config_round_trip(tmp_path):
    queries, gallery = banks(seed=3)
    scorer = ExposureShuffle(tie_quantile=0.8, seed=3).fit(queries, gallery)
    loaded = ScoreNormalizer.load(scorer.save(tmp_path / "shuffle.safetensors"))
    assert loaded.get_params() == scorer.get_params()
    assert torch.equal(loaded.scores(queries, gallery), scorer.scores(queries, gallery))


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"width": -0.1}, ValueError, "width: expected a finite number > 0"),
        ({"width": "wide"}, TypeError, "width: expected a positive number"),
        ({"tie_quantile": 1.5}, ValueError, r"tie_quantile: expected a number in \(0, 1\]"),
        ({"seed": True}, TypeError, "seed: expected an int"),
        ({"gallery_group": ""}, TypeError, "gallery_group: expected a label name"),
    ],
)
def test_bad_parameters_are_named(params, error, match):
    queries, gallery = banks()
    with pytest.raises(error, match=match):
        ExposureShuffle(**params).fit(queries, gallery)


def test_missing_unseen_or_absent_groups_and_no_relevant_pairs():
    queries, gallery = banks()
    with pytest.warns(UserWarning, match="ExposureShuffle skipped: no 'culture' label"):
        skipped = ExposureShuffle(gallery_group="culture").fit(queries, gallery)
    assert skipped.gallery_columns(gallery).columns.shape == (len(gallery), 0)
    scorer = ExposureShuffle(width=0.1).fit(queries, gallery[gallery.language != "sw"])
    with pytest.warns(UserWarning, match=r"\['sw'\] not seen at fit"):
        columns = scorer.gallery_columns(gallery).columns
    sw = gallery.language == "sw"
    assert torch.equal(columns[sw], torch.zeros_like(columns[sw]))
    assert torch.equal(columns[~sw].sum(dim=1), torch.ones(int((~sw).sum())))
    with pytest.raises(ValueError, match="ExposureShuffle: expected a 'language' label"):
        scorer.gallery_columns(EmbeddingSet(gallery.embeddings, modality="text"))
    strangers = EmbeddingSet(
        queries.embeddings, modality="image", item=[f"x{i}" for i in range(len(queries))]
    )
    with pytest.raises(ValueError, match="no calibration query has two or more relevant"):
        ExposureShuffle().fit(strangers, gallery)
