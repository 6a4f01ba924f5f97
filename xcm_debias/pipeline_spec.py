"""``pipeline_spec``: a ``Debiased`` pipeline as one line of chain spec (the report's summary).

Only the parameters that differ from their constructor defaults are written, so the line stays
short; ``parse_spec(pipeline_spec(p))`` builds the same stages again (grammar:
:mod:`xcm_debias.config_spec`). The wrapped retriever is not part of a spec.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any

from xcm_debias.config_spec import format_spec
from xcm_debias.debiased import DIRECTIONS, Debiased
from xcm_debias.processors import Chain, PostProcessor
from xcm_debias.scoring import ScoreNormalizer


def pipeline_spec(pipeline: Debiased) -> str:
    """The chain spec of a ``Debiased``'s stages, each with the parameters that differ from
    their defaults: its processors (a Chain's steps in order), its score stages (the fitted ones
    once fitted; one list when both directions hold the same), ``guard`` for a self-calibrating
    pipeline not fitted yet (once fitted, the stages its guard chose), ``cross_fit`` when set and
    ``seed`` when not 0."""
    if not isinstance(pipeline, Debiased):
        raise TypeError(f"pipeline: expected a Debiased, got {type(pipeline).__name__}")
    processors = pipeline.processors
    if processors is None:
        steps = []
    else:
        steps = list(processors.steps) if isinstance(processors, Chain) else [processors]
    scoring: Any = pipeline.scorers_ or pipeline.scoring or []
    if not isinstance(scoring, Mapping):
        scoring = {d: scoring for d in DIRECTIONS}
    by_direction = {
        d: [_stage(s) for s in ([stages] if isinstance(stages, ScoreNormalizer) else stages)]
        for d, stages in scoring.items()
    }
    directions = list(by_direction.values())
    same = len(by_direction) == len(DIRECTIONS) and directions[0] == directions[1]
    config: dict[str, Any] = {
        "processors": [_stage(step) for step in steps],
        "scoring": directions[0] if same else by_direction,
    }
    guard = getattr(pipeline, "guard", None)
    if guard is not None and not pipeline.is_fitted:  # fitted: the stages the guard chose
        config["guard"] = guard.max_recall_loss
    if pipeline.cross_fit:
        config["cross_fit"] = pipeline.cross_fit
    if pipeline.seed:
        config["seed"] = pipeline.seed
    return format_spec(config)


def _stage(stage: PostProcessor | ScoreNormalizer) -> dict[str, Any]:
    """``{"class", "params"}`` with the parameters that differ from their defaults."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(type(stage).__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    params = {
        name: value
        for name, value in stage.get_params().items()
        if name not in defaults or _json(value) != _json(defaults[name])
    }
    return {"class": type(stage).__name__, "params": params}


def _json(value: object) -> str:
    """A parameter value as JSON text: a tuple default equals the same list."""
    return json.dumps(value, sort_keys=True, default=repr)
