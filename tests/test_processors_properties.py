"""Invariants of every embedding-level processor, checked with hypothesis.

Projections are idempotent; outputs are finite for any finite input; transform never modifies
its input; a processor fitted where languages carry no signal is close to the identity.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from synthetic_processors import CONFIGS, LANGUAGES, make_world

from xcm_debias import EmbeddingSet
from xcm_debias.processors import CultureLanguageDecoupler, LanguageProjection, PostProcessor

DIM = 8
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROJECTIONS = {
    "subspace": lambda: LanguageProjection(method="subspace", normalize=False),
    "leace": lambda: LanguageProjection(method="leace", normalize=False),
    "lir": lambda: LanguageProjection(method="lir", rank=2, normalize=False),
    "oblique": lambda: CultureLanguageDecoupler(method="oblique", normalize=False),
}


@cache
def _world() -> EmbeddingSet:
    return make_world(n_items=30, dim=DIM, images_per_item=2, tug=0.3)


@cache
def _fitted(name: str) -> PostProcessor:
    factory = PROJECTIONS[name] if name in PROJECTIONS else CONFIGS[name]
    return factory().fit(_world())


def _rows(values: st.SearchStrategy[float]) -> st.SearchStrategy[EmbeddingSet]:
    """Mixed image/text rows with languages, arbitrary finite embeddings."""

    @st.composite
    def build(draw: st.DrawFn) -> EmbeddingSet:
        n = draw(st.integers(2, 6))
        x = draw(arrays(np.float32, (n, DIM), elements=values))
        modality = draw(st.lists(st.sampled_from(["image", "text"]), min_size=n, max_size=n))
        language = [draw(st.sampled_from(LANGUAGES)) if m == "text" else "" for m in modality]
        return EmbeddingSet(
            torch.from_numpy(x), modality=modality, language=language, allow_zero_norm=True
        )

    return build()


FINITE = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@pytest.mark.parametrize("name", sorted(PROJECTIONS))
@SETTINGS
@given(data=_rows(st.floats(-10, 10, allow_nan=False, width=32)))
def test_projections_are_idempotent(name: str, data: EmbeddingSet) -> None:
    proc = _fitted(name)
    once = proc.transform(data)
    twice = proc.transform(once)
    scale = 1.0 + float(data.embeddings.abs().max())
    torch.testing.assert_close(twice.embeddings, once.embeddings, atol=1e-4 * scale, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@SETTINGS
@given(data=_rows(FINITE))
def test_outputs_are_finite_float32_for_any_finite_input(name: str, data: EmbeddingSet) -> None:
    out = _fitted(name).transform(data).embeddings
    assert out.dtype == torch.float32 and out.shape == data.embeddings.shape
    assert bool(torch.isfinite(out).all())


@pytest.mark.parametrize("name", sorted(CONFIGS))
@SETTINGS
@given(data=_rows(FINITE))
def test_transform_never_modifies_its_input(name: str, data: EmbeddingSet) -> None:
    before = data.embeddings.clone()
    _fitted(name).transform(data)
    assert torch.equal(data.embeddings, before)


@pytest.mark.parametrize("name", sorted(set(CONFIGS) - {"invgc-local", "invgc-full"}))
def test_no_language_signal_means_close_to_identity(name: str) -> None:
    # captions of every language are the item's content plus independent noise
    world = make_world(n_items=200, dim=32, language_strength=0.0, culture_strength=0.0, seed=5)
    calib, test = world.split_items(0.5, seed=0)
    out = CONFIGS[name]().fit(calib).transform(test).embeddings
    cosine = torch.nn.functional.cosine_similarity(out, test.embeddings, dim=1)
    assert float(cosine.mean()) > 0.95, float(cosine.mean())
