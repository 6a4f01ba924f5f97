from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scoring_fixtures import multilingual_corpus, sims

from xcm_debias import EmbeddingSet
from xcm_debias.scoring import GroupBalance

LANGS = ("en", "de", "sw")


def banks(seed: int = 0) -> tuple[EmbeddingSet, EmbeddingSet]:
    corpus = multilingual_corpus(n_items=18, dim=10, languages=LANGS, seed=seed).normalized()
    return corpus.texts, corpus.images


def dense_soft_top1_mass(s, q_groups, g_groups, offsets, tau, q_names, g_names):
    """m[a, b] = mean over group-a queries of the softmax mass of group b (dense)."""
    qi = np.searchsorted(q_names, q_groups)
    gi = np.searchsorted(g_names, g_groups)
    p = softmax((s - offsets[qi][:, gi]) / tau, axis=1)
    onehot = np.eye(len(g_names))[gi]
    mass = np.zeros((len(q_names), len(g_names)))
    np.add.at(mass, qi, p @ onehot)
    return mass / np.bincount(qi, minlength=len(q_names))[:, None]


def dense_sinkhorn_offsets(s, q_groups, g_groups, targets, tau, q_names, g_names):
    """c_ab += τ log(m_ab / t_ab) on the dense softmax, to convergence (the update of GroupBalance's docstring)."""
    c = np.zeros_like(targets)
    for _ in range(200_000):
        mass = dense_soft_top1_mass(s, q_groups, g_groups, c, tau, q_names, g_names)
        step = tau * np.log(mass / targets)
        c = c + step
        c = c - (c * targets).sum(axis=1, keepdims=True)
        if np.abs(step).max() < 1e-11:
            return c
    raise AssertionError("dense Sinkhorn did not converge")


@pytest.mark.parametrize("tau", [0.05, 0.1, 0.3])
def test_group_balance_equals_the_dense_sinkhorn_reference(tau):
    queries, gallery = banks(seed=1)
    scorer = GroupBalance(temperature=tau, tol=1e-9).fit(queries, gallery)
    meta = scorer.fitted_meta
    q_names, g_names = np.array(meta["query_groups"]), np.array(meta["gallery_groups"])
    reference = dense_sinkhorn_offsets(
        sims(queries, gallery),
        queries.language,
        gallery.culture,
        np.array(meta["targets"]),
        tau,
        q_names,
        g_names,
    )
    assert np.allclose(scorer.offsets.double().numpy(), reference, atol=1e-5)


@pytest.mark.parametrize("tau", [0.01, 0.02])
def test_soft_top1_mass_equals_target_after_fit(tau):
    queries, gallery = banks(seed=2)
    scorer = GroupBalance(temperature=tau).fit(queries, gallery)
    meta = scorer.fitted_meta
    assert meta["iterations"] < 50
    q_names, g_names = np.array(meta["query_groups"]), np.array(meta["gallery_groups"])
    mass = dense_soft_top1_mass(
        sims(queries, gallery),
        queries.language,
        gallery.culture,
        scorer.offsets.double().numpy(),
        tau,
        q_names,
        g_names,
    )
    # targets = share of each culture among relevant images: 6 items of each culture of 18
    assert np.allclose(np.array(meta["targets"]), 1 / 3, atol=1e-3)
    assert np.allclose(mass, np.array(meta["targets"]), rtol=2e-3)


def test_group_balance_hand_case_one_query_two_groups():
    # one query; gallery items a (culture x, s = 0.9) and b (culture y, s = 0.5); target ½/½
    query = EmbeddingSet(torch.tensor([[1.0, 0.0]]), modality="text", language="en", item=["i"])
    gallery = EmbeddingSet(
        torch.tensor([[0.9, 0.43588989], [0.5, 0.8660254]]),
        modality="image",
        culture=["x", "y"],
        item=["j", "k"],
    )
    scorer = GroupBalance(temperature=0.05, target="gallery", tol=1e-10).fit(query, gallery)
    c = scorer.offsets[0].double().numpy()
    # equal mass needs equal adjusted scores: c_x − c_y = 0.9 − 0.5; gauge ½c_x + ½c_y = 0
    assert c.tolist() == pytest.approx([0.2, -0.2], abs=1e-6)
    scores = scorer.scores(query, gallery)[0]
    assert float(scores[0]) == pytest.approx(float(scores[1]), abs=1e-6)


def test_relevant_targets_follow_the_relevant_images():
    # en queries describe items of culture x twice and y once; de queries only y
    x = torch.eye(3)
    gallery = EmbeddingSet(x, modality="image", culture=["x", "x", "y"], item=["a", "b", "c"])
    queries = EmbeddingSet(
        torch.cat([x, x[2:]]),
        modality="text",
        language=["en", "en", "en", "de"],
        item=["a", "b", "c", "c"],
    )
    scorer = GroupBalance(temperature=0.1).fit(queries, gallery)
    meta = scorer.fitted_meta
    assert meta["query_groups"] == ["de", "en"] and meta["gallery_groups"] == ["x", "y"]
    floor = 1e-4 / (1 + 1e-4)  # the 1e-4 floor, renormalised
    assert np.allclose(meta["targets"], [[floor, 1 - floor], [2 / 3, 1 / 3]], atol=1e-9)


def test_image_to_text_auto_uses_one_query_group_and_the_gallery_language_mix():
    texts_, images_ = banks(seed=3)
    scorer = GroupBalance(temperature=0.02).fit(images_, texts_)
    meta = scorer.fitted_meta
    assert meta["query_group"] is None and meta["gallery_group"] == "language"
    assert meta["target"] == "gallery" and meta["gallery_groups"] == sorted(LANGS)
    assert np.allclose(meta["targets"], [[1 / 3] * 3])
    columns = scorer.gallery_columns(texts_).columns
    assert torch.equal(columns.sum(dim=1), torch.ones(len(texts_)))


def test_group_balance_errors_name_the_missing_label():
    texts_, images_ = banks(seed=4)
    unlabeled = EmbeddingSet(images_.embeddings, modality="image", item=images_.item)
    scorer = GroupBalance().fit(texts_, images_)
    with pytest.raises(ValueError, match="'culture' label"):
        scorer.gallery_columns(unlabeled)
    no_language = EmbeddingSet(texts_.embeddings, modality="text")
    columns = scorer.gallery_columns(images_)
    with pytest.raises(ValueError, match="'language' label"):
        scorer.query_columns(no_language, columns)


def test_no_culture_anywhere_skips_the_stage():
    """A calibration gallery without any culture label: the stage fits as a no-op (no column),
    says so in fitted_meta, and scores are the plain cosines."""
    texts_, images_ = banks(seed=4)
    unlabeled = EmbeddingSet(images_.embeddings, modality="image", item=images_.item)
    with pytest.warns(UserWarning, match="GroupBalance skipped: no 'culture' label"):
        scorer = GroupBalance().fit(texts_, unlabeled)
    assert "skipped" in scorer.fitted_meta
    assert scorer.gallery_columns(unlabeled).columns.shape == (len(unlabeled), 0)
    torch.testing.assert_close(
        scorer.scores(texts_, unlabeled), texts_.embeddings.float() @ unlabeled.embeddings.float().T
    )


def test_unseen_query_language_gets_no_offset_with_a_warning():
    """Rows of a language unseen in calibration get a zero query column (no offset); the
    others keep theirs: −c[A(q)]."""
    texts_, images_ = banks(seed=4)
    scorer = GroupBalance().fit(texts_, images_)
    columns = scorer.gallery_columns(images_)
    language = texts_.language.copy()
    language[::2] = "fr"
    with pytest.warns(UserWarning, match=r"\['fr'\] not seen at fit.*get the identity"):
        u = scorer.query_columns(texts_.with_labels(language=language), columns)
    assert torch.equal(u[::2], torch.zeros_like(u[::2]))
    names = scorer.fitted_meta["query_groups"]
    expected = -scorer.offsets[[names.index(g) for g in language[1::2]]]
    torch.testing.assert_close(u[1::2], expected)


def test_relevant_target_without_shared_items_is_an_error():
    texts_, images_ = banks(seed=5)
    strangers = texts_.with_labels(item=[f"other{i}" for i in range(len(texts_))])
    with pytest.raises(ValueError, match="target='gallery'"):
        GroupBalance().fit(strangers, images_)
