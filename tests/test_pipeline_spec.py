"""pipeline_spec: a Debiased as a compact chain spec (non-default parameters only) that builds
the same stages again."""

from __future__ import annotations

import pytest

from xcm_debias import Debiased, ExactRetriever
from xcm_debias.config_spec import parse_spec
from xcm_debias.configs import build, list_configs
from xcm_debias.pipeline_spec import pipeline_spec
from xcm_debias.processors import LanguageAlignment, LanguageProjection
from xcm_debias.scoring import GroupBalance, InvertedSoftmax


def _stages(pipeline: Debiased) -> list[tuple[str, dict]]:
    processors = pipeline.processors
    steps = [] if processors is None else getattr(processors, "steps", [processors])
    scoring = pipeline.scoring or []
    groups = scoring.values() if isinstance(scoring, dict) else [scoring]
    scorers = [s for group in groups for s in group]
    return [(type(s).__name__, s.get_params()) for s in [*steps, *scorers]]


def test_the_recommended_and_world_tuned_pipelines_in_one_line():
    assert pipeline_spec(build("recommended")) == "guard=0.01; cross_fit=5"
    assert pipeline_spec(build("world_tuned")) == (
        "LanguageAlignment(); t2i: GroupBalance(); i2t: InvertedSoftmax() | "
        "GroupBalance(temperature=0.005) | ExposureShuffle(); cross_fit=5"
    )


@pytest.mark.parametrize("name", list_configs())
def test_the_spec_builds_the_same_stages(name):
    pipeline = build(name)
    again = build(parse_spec(pipeline_spec(pipeline)))
    assert _stages(again) == _stages(pipeline)
    assert again.cross_fit == pipeline.cross_fit


def test_a_chain_one_list_for_both_directions_and_the_seed():
    pipeline = Debiased(
        ExactRetriever(),
        LanguageAlignment() | LanguageProjection(method="mean"),
        [InvertedSoftmax(beta=5.0), GroupBalance()],
        cross_fit=3,
        seed=7,
    )
    assert pipeline_spec(pipeline) == (
        "LanguageAlignment() | LanguageProjection(method=mean) | InvertedSoftmax(beta=5.0) | "
        "GroupBalance(); cross_fit=3; seed=7"
    )
    assert pipeline_spec(Debiased(ExactRetriever())) == ""


def test_only_a_debiased_has_a_spec():
    with pytest.raises(TypeError, match="pipeline: expected a Debiased, got ExactRetriever"):
        pipeline_spec(ExactRetriever())  # type: ignore[arg-type]
