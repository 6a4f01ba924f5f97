"""Reports on inferred labels: what a fitted pipeline's label models filled in at search.

A fitted :class:`~xcm_debias.debiased.Debiased` infers the ``language`` of a text row and the
``culture`` of an image row that carry none (``label_models_``, see
:mod:`xcm_debias.calibration.labels`). :func:`label_record` writes down, as plain JSON data for
``BiasReport.provenance["labels"]``, which labels it inferred on a corpus, on how many rows,
how confidently, and the classifiers' cross-fitted accuracy and ECE on the calibration set.
:class:`LabelFreeRetriever` hands the pipeline every query and gallery set with those labels
removed, so a labelled corpus can be evaluated as a label-free search would run, still scored
with its own (gold) labels; :func:`with_gold` adds each metric's gold-label value beside the
inferred-label one. ``BiasReport.evaluate(..., infer_labels=True)`` does both; the section
that shows the record is :mod:`xcm_debias.report.inferred_labels`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from xcm_debias.data import EmbeddingSet
from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.inferred_labels import KEY
from xcm_debias.retrieval import Ranking, Retriever
from xcm_debias.soft_labels import confident_name, from_text_name, inferred_rows, strip_labels

LABELS = ("language", "culture")


def label_models(retriever: object) -> Any | None:
    """The retriever's fitted label models (``label_models_``), or None."""
    return getattr(retriever, "label_models_", None)


class LabelFreeRetriever:
    """``retriever`` searched with every row's ``language`` and ``culture`` removed.

    Args:
        retriever: a fitted pipeline with label models (``label_models_``, as a fitted
            ``Debiased`` whose stages read group labels has).

    ``search``, ``rank_of`` and ``transform`` strip the labels and call the wrapped pipeline,
    which infers them. The stripped copy of a set is kept while the caller's set lives (the
    wrapped pipeline caches a processed gallery by object identity).
    """

    def __init__(self, retriever: Retriever) -> None:
        if label_models(retriever) is None:
            raise ValueError(
                f"retriever: expected a fitted pipeline with label models (label_models_), got "
                f"{type(retriever).__name__} without any"
            )
        self.retriever = retriever
        self._stripped: dict[int, tuple[EmbeddingSet, EmbeddingSet]] = {}

    def __repr__(self) -> str:
        return f"LabelFreeRetriever({self.retriever!r})"

    def stripped(self, data: EmbeddingSet) -> EmbeddingSet:
        """``data`` without ``language`` and ``culture`` (one copy per live set)."""
        if not isinstance(data, EmbeddingSet):
            raise TypeError(f"data: expected an EmbeddingSet, got {type(data).__name__}")
        kept = self._stripped.get(id(data))
        if kept is None or kept[0] is not data:
            kept = self._stripped[id(data)] = (data, strip_labels(data, LABELS))
        return kept[1]

    def search(self, queries: EmbeddingSet, gallery: EmbeddingSet, k: int) -> Ranking:
        return self.retriever.search(self.stripped(queries), self.stripped(gallery), k)

    def rank_of(
        self, queries: EmbeddingSet, gallery: EmbeddingSet, targets: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        return self.retriever.rank_of(self.stripped(queries), self.stripped(gallery), targets)

    def transform(self, data: EmbeddingSet) -> EmbeddingSet:
        return self.retriever.transform(self.stripped(data))


def label_record(retriever: object, corpus: EmbeddingSet, label_free: bool) -> dict | None:
    """The ``provenance["labels"]`` record of ``retriever`` on ``corpus`` (see
    :mod:`xcm_debias.report.inferred_labels` for its layout).

    ``label_free``: the labels were removed from every row before search; else only the rows
    that lack one are inferred. None when the retriever has no label models, or (not
    ``label_free``) when no row of the corpus needed a label inferred.
    """
    if not isinstance(corpus, EmbeddingSet):
        raise TypeError(f"corpus: expected an EmbeddingSet, got {type(corpus).__name__}")
    if not isinstance(label_free, bool):
        raise TypeError(f"label_free: expected a bool, got {type(label_free).__name__}")
    models = label_models(retriever)
    if models is None or not (label_free or _lacks_labels(models, corpus)):
        return None
    filled = models.fill(strip_labels(corpus, LABELS) if label_free else corpus)
    labels: dict[str, Any] = {}
    for label, summary in models.summary().items():
        if "skipped" in summary:
            labels[label] = {"skipped": summary["skipped"]}
            continue
        rows = corpus.modality == summary["modality"]
        inferred = inferred_rows(filled, label) & rows
        sure = filled.extra.get(confident_name(label), np.ones(len(corpus), dtype=bool))
        entry: dict[str, Any] = {
            "modality": summary["modality"],
            "rows": int(rows.sum()),
            "inferred": int(inferred.sum()),
            "unconfident": int((inferred & ~sure.astype(bool)).sum()),
            "classifier": summary,
        }
        textual = filled.extra.get(from_text_name(label))
        if textual is not None:
            entry["from_text"] = int((inferred & textual.astype(bool)).sum())
        gold = corpus.label(label)
        if inferred.any() and (gold[inferred] != "").all():
            right = filled.label(label)[inferred] == gold[inferred]
            entry["accuracy"], entry["wrong"] = float(right.mean()), int((~right).sum())
        labels[label] = entry
    if not label_free and not any(entry.get("inferred") for entry in labels.values()):
        return None
    return {"label_free": bool(label_free), "labels": labels}


def _lacks_labels(models: Any, corpus: EmbeddingSet) -> bool:
    """Does a row of the corpus lack a label that ``models`` would infer?"""
    for label, summary in models.summary().items():
        rows = corpus.modality == summary.get("modality")
        if rows.any() and (corpus.label(label)[rows] == "").any():
            return True
    return False


def with_gold(inferred: BiasReport, gold: BiasReport, record: dict) -> BiasReport:
    """``inferred`` (a label-free run) with ``gold``'s configuration and provenance (those of the
    pipeline itself) and ``record`` (from :func:`label_record`); where the corpus has the gold
    labels of every inferred row (each entry has an ``accuracy``), the record also holds every
    shared metric's two values under ``"gold"``."""
    entries = [e for e in record["labels"].values() if e.get("inferred")]
    record = dict(record)
    if entries and all("accuracy" in e for e in entries):
        record["gold"] = {
            key: {"gold": float(gold.metrics[key]), "inferred": float(value)}
            for key, value in inferred.metrics.items()
            if key in gold.metrics
        }
    return replace(inferred, config=dict(gold.config), provenance={**gold.provenance, KEY: record})
