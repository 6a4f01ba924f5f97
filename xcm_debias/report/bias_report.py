"""BiasReport: every bias metric of one retriever on one corpus, with stable flat keys.

Plain data: the methods that evaluate, compare, render or serialise a report call the
operations that the modules above register in :mod:`xcm_debias.report.registry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xcm_debias.data import EmbeddingSet
from xcm_debias.report.registry import operation
from xcm_debias.retrieval import Retriever


@dataclass
class BiasReport:
    """Metrics of one retriever on one corpus.

    Attributes:
        metrics: flat ``dict[str, float]`` with the stable keys listed in docs/metrics.md
            (``t2i/recall@1``, ``i2t/language_tv@1``, ``t2i/own_culture@1/lang=de``...).
        details: arrays behind the plots, as JSON-able lists (``t2i/k_occurrence@10``...).
        config: how the report was made (k, retriever, sizes, languages, cultures).
        uncertainty: standard error of a metric, for the keys that have one (recall@k, MRR,
            mAP@k, own-culture@1 and its excess, MRV: analytic SE of a mean over queries,
            items or languages; language TV@k and hubness skew@k: bootstrap over queries, 200
            resamples, seed 0). Only finite values are kept.
        provenance: plain JSON data about how the evaluated retriever came to be, one entry
            per kind; ``"selection"`` is ``retriever.selection_.to_dict()`` (the recall
            guard's candidate table) when the retriever has one; ``"labels"`` says which group
            labels the retriever inferred at search (``xcm_debias.report.inferred_labels``).
    """

    metrics: dict[str, float]
    details: dict[str, list[float]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    uncertainty: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def evaluate(
        cls,
        retriever: Retriever,
        corpus: EmbeddingSet,
        k: int = 10,
        culture_of_language: dict[str, str] | None = None,
        *,
        low_resource: Sequence[str] | None = None,
        cooccurring_objects: Sequence[tuple[str, str]] | None = None,
        infer_labels: bool = False,
    ) -> BiasReport:
        """Run text→image and image→text on ``corpus`` and compute every metric.

        Texts are queries against the images (t2i); images are queries against the
        multilingual captions (i2t). Relevance = same ``item``. ``culture_of_language`` maps a
        language to its associated culture (default: the culture equal to the language code).
        ``low_resource`` names the languages 3XCM's LBKL@k counts as low-resource (omitted
        when not given); ``cooccurring_objects`` lists the object pairs that co-occur in
        training, for ODmAP@k (else a boolean ``decorrelated`` extra column is used, if any).
        ``infer_labels=True`` evaluates a label-free search: a fitted pipeline gets every row
        without ``language``/``culture`` and infers them; the metrics are scored with the
        corpus's labels and ``provenance["labels"]`` compares them with the labelled search.
        See ``xcm_debias.report.evaluate.evaluate_report``.
        """
        return operation("evaluate")(
            retriever,
            corpus,
            k=k,
            culture_of_language=culture_of_language,
            low_resource=low_resource,
            cooccurring_objects=cooccurring_objects,
            infer_labels=infer_labels,
        )

    # ------------------------------------------------------------ comparison
    def compare(
        self, other: BiasReport, labels: tuple[str, str] = ("before", "after")
    ) -> Comparison:  # noqa: F821 (built by report/comparison.py, registered as "compare")
        """This report (before) against ``other`` (after): values, ``after − before`` deltas and
        a better/worse verdict per metric (direction table: ``report/families.py``)."""
        return operation("compare")(self, other, labels)

    # ------------------------------------------------------------- rendering
    def __str__(self) -> str:
        """Grouped terminal tables: retrieval, language prevalence, cultural tugging,
        consistency, hubness."""
        return operation("text")(self)

    def to_markdown(self, figure_dir: str | None = None) -> str:
        """Markdown tables per section; ``figure_dir`` links the plots of :meth:`save_plots`."""
        return operation("markdown")(self, figure_dir=figure_dir)

    def to_dict(self) -> dict[str, object]:
        """JSON-able dict (``format``, ``version``, ``metrics``, ``details``, ``config``)."""
        return operation("report_to_dict")(self)

    def to_json(self, path: str | Path | None = None) -> str:
        """Strict JSON (NaN as ``null``, ±inf as ``"Infinity"``); written to ``path`` when
        given. :meth:`from_json` reads it back exactly."""
        return operation("to_json")(self.to_dict(), path)

    @classmethod
    def from_json(cls, source: str | Path) -> BiasReport:
        """Read :meth:`to_json` output: a path, or the JSON text itself."""
        return operation("report_from_json")(source)

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML page (inline CSS, inline PNG plots, no external resource)."""
        text = operation("html")(self)
        if path is not None:
            operation("write_text")(path, text, "path")
        return text

    def save_plots(self, folder: str | Path) -> list[Path]:
        """Write each plot as ``<folder>/<name>.png``; returns the written paths."""
        return operation("plots")(folder, self)
