"""BiasReport: every bias metric of one retriever on one corpus, with stable flat keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xcm_debias.data import EmbeddingSet
from xcm_debias.retrieval import Retriever


@dataclass
class BiasReport:
    """Metrics of one retriever on one corpus.

    Attributes:
        metrics: flat ``dict[str, float]`` with the stable keys of DESIGN.md
            (``t2i/recall@1``, ``i2t/language_tv@1``, ``t2i/own_culture@1/lang=de``...).
        details: arrays behind the plots, as JSON-able lists (``t2i/k_occurrence@10``...).
        config: how the report was made (k, retriever, sizes, languages, cultures).
    """

    metrics: dict[str, float]
    details: dict[str, list[float]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def evaluate(
        cls,
        retriever: Retriever,
        corpus: EmbeddingSet,
        k: int = 10,
        culture_of_language: dict[str, str] | None = None,
    ) -> BiasReport:
        """Run text→image and image→text on ``corpus`` and compute every metric.

        Texts are queries against the images (t2i); images are queries against the
        multilingual captions (i2t). Relevance = same ``item``. ``culture_of_language`` maps a
        language to its associated culture (default: the culture equal to the language code).
        """
        from xcm_debias.report.evaluate import evaluate_report

        return evaluate_report(retriever, corpus, k=k, culture_of_language=culture_of_language)
