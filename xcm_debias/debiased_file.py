"""The file of a fitted :class:`~xcm_debias.debiased.Debiased`: one ``.safetensors``, no pickle.

Tensors are stored under ``processors.<name>``, ``scoring.<direction>.<stage>.<name>`` and
``labels.<name>``; the JSON config rides in the header: ``"class": "Debiased"``, the configs of
the processors, of each direction's score stages and of the label models, ``cross_fit``,
``seed`` and the recall guard's ``selection`` (None when absent). The wrapped retriever is not
saved: ``Debiased.load`` takes one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from xcm_debias.calibration.labels import LabelModels
from xcm_debias.calibration.selection import Selection
from xcm_debias.fitted import read_config, restore_buffers, write_safetensors
from xcm_debias.processors.base import PostProcessor
from xcm_debias.scoring.base import ScoreNormalizer


@dataclass
class DebiasedState:
    """What a fitted ``Debiased`` saves: its fitted stages and the arguments that made them."""

    processors: PostProcessor | None
    scorers: dict[str, list[ScoreNormalizer]]
    label_models: LabelModels | None
    cross_fit: bool | int
    seed: int
    selection: Selection | None


def write_debiased(path: str | Path, state: DebiasedState) -> Path:
    """Write ``state`` to ``path`` (see the module docstring); returns the path written."""
    if not isinstance(state, DebiasedState):
        raise TypeError(f"state: expected a DebiasedState, got {type(state).__name__}")
    tensors: dict[str, torch.Tensor] = {}
    if state.processors is not None:
        tensors.update(_prefixed(state.processors.state_dict(), "processors."))
    for direction, scorers in state.scorers.items():
        for stage, scorer in enumerate(scorers):
            tensors.update(_prefixed(scorer.state_dict(), f"scoring.{direction}.{stage}."))
    if state.label_models is not None:
        tensors.update(_prefixed(state.label_models.state_dict(), "labels."))
    config = {
        "class": "Debiased",
        "labels": None if state.label_models is None else state.label_models.to_config(),
        "processors": None if state.processors is None else state.processors.to_config(),
        "scoring": {d: [s.to_config() for s in scorers] for d, scorers in state.scorers.items()},
        "cross_fit": state.cross_fit,
        "seed": state.seed,
        "selection": None if state.selection is None else state.selection.to_dict(),
    }
    return write_safetensors(path, tensors, config)


def read_debiased(path: str | Path) -> DebiasedState:
    """The fitted state :func:`write_debiased` wrote to ``path``."""
    config = read_config(path)
    if not isinstance(config, dict) or config.get("class") != "Debiased":
        raise ValueError(f"{path}: not a saved Debiased pipeline")
    state = load_file(str(Path(path)))
    processors = None
    if config["processors"] is not None:
        processors = PostProcessor.from_config(config["processors"])
        restore_buffers(processors, _substate(state, "processors."))
    scorers: dict[str, list[ScoreNormalizer]] = {}
    for direction, configs in config["scoring"].items():
        scorers[direction] = []
        for stage, scorer_config in enumerate(configs):
            scorer = ScoreNormalizer.from_config(scorer_config)
            restore_buffers(scorer, _substate(state, f"scoring.{direction}.{stage}."))
            scorers[direction].append(scorer)
    labels = config.get("labels")
    selection = config.get("selection")
    return DebiasedState(
        processors=processors,
        scorers=scorers,
        label_models=None
        if labels is None
        else LabelModels.restore(labels, _substate(state, "labels.")),
        cross_fit=config["cross_fit"],
        seed=config["seed"],
        selection=None if selection is None else Selection.from_dict(selection),
    )


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v.detach().cpu().contiguous() for k, v in state.items()}


def _substate(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
