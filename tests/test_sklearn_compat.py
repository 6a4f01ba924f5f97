"""scikit-learn's estimator contract on every processor and score normaliser: get_params(deep),
set_params, fit_transform and sklearn.base.clone (an unfitted copy that refits identically)."""

from __future__ import annotations

import pytest
import torch
from sklearn.base import clone

from tests.synthetic_processors import make_world
from xcm_debias import processors, scoring
from xcm_debias.fitted import FittedModule
from xcm_debias.processors import Chain, LanguageAlignment, OTRecenter, PostProcessor
from xcm_debias.scoring import ScoreNormalizer


def public(package, base: type) -> list[str]:
    """The concrete method classes a package exports (test-defined subclasses left out)."""
    names = [n for n in package.__all__ if isinstance(getattr(package, n), type)]
    return sorted(
        n
        for n in names
        if issubclass(getattr(package, n), base) and n not in (base.__name__, "Chain")
    )


PROCESSORS = public(processors, PostProcessor)
SCORERS = public(scoring, ScoreNormalizer)
# one non-default constructor argument every class of the family has
NON_DEFAULT = {"processor": {"normalize": False}, "scorer": {"block_size": 7}}


def world():
    return make_world(n_items=24, dim=8, tug=0.5, seed=3)


def module(name: str) -> FittedModule:
    if name in PostProcessor.registry:
        return PostProcessor.registry[name](**NON_DEFAULT["processor"])
    return ScoreNormalizer.registry[name](**NON_DEFAULT["scorer"])


def fit(m: FittedModule) -> torch.Tensor:
    """Fit ``m`` on the world; its output there (transformed rows, or image→text scores)."""
    data = world()
    if isinstance(m, PostProcessor):
        return m.fit(data).transform(data).embeddings
    banks = (data.images.normalized(), data.texts.normalized())
    return m.fit(*banks).scores(*banks)


def fit_transform(m: FittedModule) -> torch.Tensor:
    data = world()
    if isinstance(m, PostProcessor):
        return m.fit_transform(data).embeddings
    return m.fit_transform(data.images.normalized(), data.texts.normalized())


def test_every_public_class_is_covered():
    assert len(PROCESSORS) == 5 and len(SCORERS) == 8
    assert {"LanguageAlignment", "OTRecenter"} <= set(PROCESSORS)
    assert {"GroupBalance", "ExposureShuffle", "TranslationPooling"} <= set(SCORERS)


@pytest.mark.parametrize("name", PROCESSORS + SCORERS)
def test_clone_is_unfitted_with_equal_params_and_refits_identically(name):
    original = module(name)
    fitted_output = fit(original)
    copy = clone(original)
    assert type(copy) is type(original) and copy is not original
    assert not copy.is_fitted and original.is_fitted
    assert copy.get_params() == original.get_params()
    family = "processor" if name in PROCESSORS else "scorer"
    assert copy.get_params().items() >= NON_DEFAULT[family].items()
    assert torch.equal(fit(copy), fitted_output)


@pytest.mark.parametrize("name", PROCESSORS + SCORERS)
def test_get_params_deep_and_shallow_agree_and_set_params_rebuilds(name):
    m = module(name)
    assert m.get_params(deep=True) == m.get_params(deep=False) == m.get_params()
    default = type(m)()
    fit(m)
    assert m.set_params(**default.get_params()) is m
    assert m.get_params() == default.get_params()
    assert not m.is_fitted  # parameters changed: the old fit no longer applies
    with pytest.raises(ValueError, match=r"set_params: expected parameters of .* got \['nope'\]"):
        m.set_params(nope=1)


@pytest.mark.parametrize("name", PROCESSORS + SCORERS)
def test_fit_transform_equals_fit_then_transform(name):
    assert torch.equal(fit_transform(module(name)), fit(module(name)))


def test_chain_deep_params_set_params_and_clone():
    chain = Chain(LanguageAlignment(), OTRecenter(method="mean"), cross_fit=2)
    deep = chain.get_params(deep=True)
    assert deep["cross_fit"] == 2
    assert deep["step0"] is chain.steps[0] and deep["step1__method"] == "mean"
    assert chain.get_params(deep=False) == {"cross_fit": 2}
    chain.set_params(cross_fit=3, step1__method="diag", step0__seed=4)
    assert chain.cross_fit == 3
    assert chain.steps[1].method == "diag" and chain.steps[0].seed == 4
    with pytest.raises(ValueError, match=r"expected 'cross_fit' or 'step<i>__<name>' with i < 2"):
        chain.set_params(step2__seed=1)
    with pytest.raises(ValueError, match="cross_fit: expected 0"):
        chain.set_params(cross_fit=1)
    output = chain.fit_transform(world()).embeddings
    copy = clone(chain)
    assert isinstance(copy, Chain) and not copy.is_fitted
    assert all(a is not b for a, b in zip(copy.steps, chain.steps, strict=True))
    assert copy.get_params(deep=False) == {"cross_fit": 3}
    assert [s.get_params() for s in copy.steps] == [s.get_params() for s in chain.steps]
    assert torch.equal(copy.fit_transform(world()).embeddings, output)
