"""What the recall guard chose, and why: plain data that saves with a fitted pipeline.

A :class:`Selection` holds one row per candidate scored out-of-fold (its name, chain spec,
direction, pooled metrics, the paired recall loss against the plain retriever, whether it was
admissible and, if not, why) and the name of the configuration that was chosen. It is JSON
data (``to_dict`` / ``from_dict``), written into a saved ``Debiased`` pipeline's header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from xcm_debias.data import EmbeddingSet
from xcm_debias.retrieval import Retriever


@dataclass
class Candidate:
    """One candidate's out-of-fold record.

    Attributes:
        name: short name (processors option + the direction's score stages).
        spec: its chain spec (see ``xcm_debias.config_spec``).
        direction: ``"t2i"`` or ``"i2t"`` (score stages act per direction), or ``"both"``.
        metrics: pooled out-of-fold metrics (``BiasReport`` key names).
        admissible: every recall constraint held.
        reasons: why not (one line per failed constraint), or the fit error.
    """

    name: str
    spec: str
    direction: str
    metrics: dict[str, float] = field(default_factory=dict)
    admissible: bool = False
    reasons: list[str] = field(default_factory=list)


@dataclass
class Selection:
    """The guard's choice and its frontier (see the module docstring)."""

    chosen: str
    max_recall_loss: float
    n_folds: int
    candidates: list[Candidate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``from_dict`` inverts it)."""
        return {
            "chosen": self.chosen,
            "max_recall_loss": self.max_recall_loss,
            "n_folds": self.n_folds,
            "candidates": [vars(c).copy() for c in self.candidates],
            "notes": list(self.notes),
            "config": self.config,
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Selection:
        """Inverse of :meth:`to_dict`; errors name the missing key."""
        if not isinstance(data, Mapping):
            raise TypeError(f"data: expected a mapping, got {type(data).__name__}")
        missing = [
            k for k in ("chosen", "max_recall_loss", "n_folds", "candidates") if k not in data
        ]
        if missing:
            raise ValueError(f"data: expected keys {missing} of a saved Selection, got none")
        return Selection(
            chosen=str(data["chosen"]),
            max_recall_loss=float(data["max_recall_loss"]),
            n_folds=int(data["n_folds"]),
            candidates=[Candidate(**dict(c)) for c in data["candidates"]],
            notes=[str(n) for n in data.get("notes", [])],
            config=dict(data.get("config", {})),
        )

    def chosen_candidates(self) -> list[Candidate]:
        """The rows of the chosen configuration (one per direction)."""
        return [c for c in self.candidates if c.name in self.chosen.split(" + ")]


class RecallGuardLike(Protocol):
    """What ``Debiased(guard=...)`` calls: ``select(retriever, calibration, cross_fit)``."""

    def select(
        self, retriever: Retriever, calibration: EmbeddingSet, cross_fit: bool | int
    ) -> Selection: ...
