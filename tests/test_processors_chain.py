"""Chains of the embedding-level processors, and cross-fitting (``Chain(cross_fit=F)``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic_processors import CONFIGS, make_world

from xcm_debias.processors import Chain, LanguageProjection, OTRecenter, PostProcessor

PAIRS = [
    ("alignment-ridge", "projection-leace"),
    ("projection-center", "ot-diag"),
    ("decoupler-oblique", "invgc-local"),
    ("ot-modality", "decoupler-orthogonal"),
]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_chain_of_two_equals_applying_them_in_turn(first: str, second: str) -> None:
    world = make_world(n_items=40, dim=12, images_per_item=2, tug=0.3)
    calib, test = world.split_items(0.5, seed=1)
    chain = (CONFIGS[first]() | CONFIGS[second]()).fit(calib)
    a = CONFIGS[first]().fit(calib)
    b = CONFIGS[second]().fit(a.transform(calib))
    assert torch.equal(chain.transform(test).embeddings, b.transform(a.transform(test)).embeddings)


def test_cross_fit_fits_the_next_stage_on_out_of_fold_outputs() -> None:
    world = make_world(n_items=45, dim=10, tug=0.3)
    chain = Chain(LanguageProjection(method="center"), OTRecenter(method="diag"), cross_fit=3)
    chain.fit(world)
    folds = chain._item_folds(world)
    # folds are item-disjoint (an item's image and captions together) and balanced
    for item in np.unique(world.item):
        assert len(set(folds[world.item == item].tolist())) == 1
    assert np.bincount(folds).tolist() == [60, 60, 60]  # 15 items × (1 image + 3 captions)
    # by hand: each fold transformed by a projection fitted on the other folds
    out_of_fold = world.embeddings.clone()
    for fold in range(3):
        held = folds == fold
        step = LanguageProjection(method="center").fit(world[~held])
        out_of_fold[torch.from_numpy(held)] = step.transform(world[held]).embeddings
    expected = OTRecenter(method="diag").fit(world.with_embeddings(out_of_fold))
    torch.testing.assert_close(chain.steps[1].scale, expected.scale)
    torch.testing.assert_close(chain.steps[1].means, expected.means)
    # the first stage itself is fitted on every calibration row
    full = LanguageProjection(method="center").fit(world)
    torch.testing.assert_close(chain.steps[0].shift, full.shift)
    # and in-sample chaining gives a different second stage
    plain = (LanguageProjection(method="center") | OTRecenter(method="diag")).fit(world)
    assert (plain.steps[1].means - chain.steps[1].means).abs().max() > 1e-4


def test_cross_fit_survives_or_and_save_load(tmp_path: object) -> None:
    world = make_world(n_items=24, dim=8)
    chain = Chain(LanguageProjection(), cross_fit=2) | OTRecenter()
    assert chain.cross_fit == 2 and len(chain.steps) == 2
    chain.fit(world)
    loaded = PostProcessor.load(chain.save(tmp_path / "c.safetensors"))  # type: ignore[operator]
    assert isinstance(loaded, Chain) and loaded.cross_fit == 2
    assert torch.equal(loaded.transform(world).embeddings, chain.transform(world).embeddings)


def test_cross_fit_errors_are_explicit() -> None:
    with pytest.raises(ValueError, match="cross_fit"):
        Chain(LanguageProjection(), cross_fit=1)
    with pytest.raises(TypeError, match="cross_fit"):
        Chain(LanguageProjection(), cross_fit=2.5)  # type: ignore[arg-type]
    one = make_world(n_items=1, dim=4)
    with pytest.raises(ValueError, match="at least 2 calibration items"):
        Chain(LanguageProjection(), OTRecenter(), cross_fit=4).fit(one)
    # a fold copy that cannot be fitted says which step and fold
    few = make_world(n_items=4, dim=4)
    with pytest.raises(ValueError, match=r"step 0 \(LanguageProjection\) fitted without fold"):
        Chain(LanguageProjection(method="lir", rank=3), OTRecenter(), cross_fit=2).fit(few)


def test_cross_fit_folds_are_capped_at_the_number_of_items() -> None:
    # 3 items, 20 folds asked: leave-one-item-out, the same fit as cross_fit=3
    tiny = make_world(n_items=3, dim=4)
    capped = Chain(LanguageProjection(method="center"), OTRecenter(method="diag"), cross_fit=20)
    three = Chain(LanguageProjection(method="center"), OTRecenter(method="diag"), cross_fit=3)
    folds = capped._item_folds(tiny)
    assert np.array_equal(folds, three._item_folds(tiny))
    assert sorted(set(folds.tolist())) == [0, 1, 2]
    for item in np.unique(tiny.item):  # one fold per item, an item's rows together
        assert len(set(folds[tiny.item == item].tolist())) == 1
    assert len({int(folds[tiny.item == item][0]) for item in np.unique(tiny.item)}) == 3
    capped.fit(tiny)
    three.fit(tiny)
    expected = three.state_dict()
    assert capped.state_dict().keys() == expected.keys()
    for key, value in capped.state_dict().items():
        assert torch.equal(value, expected[key]), key
    # and the out-of-fold fit differs from in-sample (the cap did not switch cross-fitting off)
    in_sample = Chain(LanguageProjection(method="center"), OTRecenter(method="diag")).fit(tiny)
    assert not torch.allclose(in_sample.steps[1].scale, capped.steps[1].scale)
