"""The headline table that opens a report: the three biases and recall, with their noise.

=====================  ====================================  ==================================
bias                   metric                                no bias
=====================  ====================================  ==================================
language prevalence    ``i2t/language_tv@1``                 0 (top-1 captions in the
                                                             gallery's language mix)
cultural tugging       ``t2i/own_culture_excess@1``          0 (own culture at chance)
inconsistency          ``t2i/mrv``, ``i2t/mrv``              0 (same rank in every language)
hubness                ``t2i|i2t/hubness_skew@k``            its random-retriever null
recall                 ``t2i/recall@1``, ``i2t/recall@1``    —
=====================  ====================================  ==================================

Each value is shown ± its standard error (``BiasReport.uncertainty``). In a comparison, a change
is better or worse only beyond its noise (:func:`xcm_debias.report.families.noise_of`), else
"within noise". Metric names link to their one-line definitions at the end of the page, which
name the section of docs/metrics.md that defines them in full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xcm_debias.report import families
from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.blocks import (
    Block,
    Cell,
    Heading,
    Paragraph,
    Sides,
    Table,
    anchor,
    fmt,
    fmt_delta,
    fmt_se,
)
from xcm_debias.report.comparison import Comparison

TITLE = "Headline"
DEFINITIONS_TITLE = "Headline metrics: definitions"
METRICS_DOC = "docs/metrics.md"


@dataclass(frozen=True)
class HeadlineMetric:
    bias: str
    key: str  # ``{k}`` stands for the report's k
    no_bias: str  # the no-bias level, or the key holding it
    definition: str
    doc_anchor: str  # the section of docs/metrics.md
    absent: str  # why a report has no such key

    def key_for(self, k: int) -> str:
        return self.key.format(k=k)


_SKEW = (
    "skewness of N_k (how many of the queries' top-{k} lists hold each gallery item) over all "
    "gallery items; a long right tail (hubs) makes it large. A uniformly random retriever "
    "gives {null}. Undefined (nan) when every item has the same N_k, e.g. when k is at least "
    "the gallery size."
)
HEADLINE: tuple[HeadlineMetric, ...] = (
    HeadlineMetric(
        "language prevalence",
        "i2t/language_tv@1",
        "0",
        "½ Σ_l |s_l − π_l|, s_l = share of image queries whose top-1 caption is in language l, "
        "π_l = share of the gallery's captions in l. 0 = the top-1 captions follow the "
        "gallery's language mix.",
        "language-share",
        "the captions carry no language label",
    ),
    HeadlineMetric(
        "cultural tugging",
        "t2i/own_culture_excess@1",
        "0",
        "mean over query languages of own-culture@1 − chance: the share of a language's "
        "queries whose top-1 image has the language's culture, minus the share of that "
        "culture among their relevant images. 0 = culture-blind.",
        "own-culture",
        "no caption language has its own culture among the image cultures (culture_of_language)",
    ),
    HeadlineMetric(
        "inconsistency",
        "t2i/mrv",
        "0",
        "mean over items of the standard deviation, across the item's caption languages, of "
        "the rank of the first relevant image. 0 = every language finds it at the same rank.",
        "mrv",
        "no item is captioned in two or more languages",
    ),
    HeadlineMetric(
        "inconsistency",
        "i2t/mrv",
        "0",
        "mean over image queries of the standard deviation, across languages, of the rank of "
        "the right caption among the captions of that language.",
        "mrv",
        "no image has right captions in two or more languages",
    ),
    HeadlineMetric(
        "hubness",
        "t2i/hubness_skew@{k}",
        "t2i/hubness_skew_null@{k}",
        "text→image: " + _SKEW,
        "hubness",
        "the report has no text→image hubness",
    ),
    HeadlineMetric(
        "hubness",
        "i2t/hubness_skew@{k}",
        "i2t/hubness_skew_null@{k}",
        "image→text: " + _SKEW,
        "hubness",
        "the report has no image→text hubness",
    ),
    HeadlineMetric(
        "recall",
        "t2i/recall@1",
        "—",
        "share of text queries whose top-1 image is relevant (same item).",
        "recall",
        "the report has no text→image recall",
    ),
    HeadlineMetric(
        "recall",
        "i2t/recall@1",
        "—",
        "share of image queries whose top-1 caption is relevant (same item).",
        "recall",
        "the report has no image→text recall",
    ),
)
LEGEND = (
    "± one standard error: for recall and MRV that of a mean (over queries, over items), for "
    "own-culture excess that of a mean of per-language means, for language TV and hubness "
    "skew a bootstrap over queries (200 resamples, seed 0)."
)
NOISE_LEGEND = (
    "A change is better or worse only when it exceeds its noise = "
    f"{families.NOISE_Z:g}·√(SE_before² + SE_after²); a smaller one is ≈ within noise "
    "(the SEs are combined as for independent samples: cautious for two retrievers on the "
    "same queries)."
)


def report_k(report: BiasReport) -> int:
    k = report.config.get("k")
    return k if isinstance(k, int) and not isinstance(k, bool) else 10


def definition_anchor(key: str) -> str:
    return "def-" + anchor(key)


def headline_blocks(sides: Sides, comparison: Comparison | None) -> list[Block]:
    """The headline table, its legend, and why a headline value is nan or absent."""
    k = report_k(sides[0][1])
    rows = []
    for metric in HEADLINE:
        key = metric.key_for(k)
        if not any(key in report.metrics for _, report in sides):
            continue
        name = Cell(key, href="#" + definition_anchor(key))
        if comparison is None:
            rows.append(_single_row(metric, name, sides[0][1], k))
        else:
            rows.append(_comparison_row(metric, name, comparison))
    if comparison is None:
        header: tuple[str, ...] = ("bias", "metric", "value ± SE", "no bias", "better")
    else:
        before, after = comparison.labels
        header = ("bias", "metric", f"{before} ± SE", f"{after} ± SE", "Δ", "noise", "verdict")
    blocks: list[Block] = [Heading(TITLE, 2)]
    if rows:
        blocks.append(Table(None, header, tuple(rows)))
        blocks.append(Paragraph(LEGEND + ("" if comparison is None else " " + NOISE_LEGEND)))
    blocks.extend(Paragraph(note) for note in notes(sides))
    return blocks


def _single_row(metric: HeadlineMetric, name: Cell, report: BiasReport, k: int) -> tuple[Cell, ...]:
    key = name.text
    no_bias = metric.no_bias.format(k=k)
    if "/" in no_bias:
        no_bias = fmt(report.metrics.get(no_bias))
    return (
        Cell(metric.bias),
        name,
        Cell(fmt_se(report.metrics.get(key), report.uncertainty.get(key))),
        Cell(no_bias),
        Cell(_better_word(key)),
    )


def _comparison_row(metric: HeadlineMetric, name: Cell, comparison: Comparison) -> tuple[Cell, ...]:
    key = name.text
    entry = comparison[key]
    verdict = comparison.noise_verdict(key)
    noise = comparison.noise(key)
    return (
        Cell(metric.bias),
        name,
        Cell(fmt_se(entry.before, comparison.before.uncertainty.get(key))),
        Cell(fmt_se(entry.after, comparison.after.uncertainty.get(key))),
        Cell(fmt_delta(entry.delta)),
        Cell("—" if noise is None else f"{noise:.3f}"),
        Cell(verdict if verdict != families.NO_DIRECTION else "", verdict),
    )


def _better_word(key: str) -> str:
    better = families.family_of(key).better
    return {families.HIGHER: "higher", families.LOWER: "lower", families.ABS_LOWER: "|x| lower"}[
        better
    ]


def notes(sides: Sides) -> list[str]:
    """Why a headline value is nan (hubness skew) or absent from every report."""
    out = []
    k = report_k(sides[0][1])
    for metric in HEADLINE:
        key = metric.key_for(k)
        if not any(key in report.metrics for _, report in sides):
            out.append(f"{key}: not measured — {metric.absent}.")
            continue
        for label, report in sides:
            value = report.metrics.get(key)
            if value is not None and math.isnan(value):
                side = f" ({label})" if label else ""
                out.append(f"{key} is nan{side}: {_nan_reason(report, key, k)}")
    return out


def _nan_reason(report: BiasReport, key: str, k: int) -> str:
    task = key.split("/", 1)[0]
    counts = report.details.get(f"{task}/k_occurrence@{k}")
    if "hubness_skew" not in key or not counts:
        return "the metric is undefined on this corpus."
    n_gallery = len(counts)
    n_queries = report.config.get(f"n_{task}_queries")
    if len(set(counts)) == 1:
        lists = f" of the {n_queries} top-{k} lists" if n_queries is not None else " top-k lists"
        why = (
            f"k = {k} is at least the gallery size, so every item is in every list"
            if k >= n_gallery
            else "every item occurs equally often"
        )
        return (
            f"each of the {n_gallery} gallery items is in {int(counts[0])}{lists}: "
            f"N_k is constant ({why}), and the skewness of a constant is undefined."
        )
    return "the skewness of N_k is undefined on this gallery."


def definition_blocks(sides: Sides) -> list[Block]:
    """One paragraph per headline metric shown, each with the anchor the table links to."""
    k = report_k(sides[0][1])
    blocks: list[Block] = []
    for metric in HEADLINE:
        key = metric.key_for(k)
        if not any(key in report.metrics for _, report in sides):
            continue
        null = metric.no_bias.format(k=k) if "/" in metric.no_bias else ""
        text = metric.definition.format(k=k, null=null or "0")
        blocks.append(
            Paragraph(
                f"{key}: {text} Full definition: {METRICS_DOC}#{metric.doc_anchor}.",
                anchor=definition_anchor(key),
            )
        )
    return [Heading(DEFINITIONS_TITLE, 2), *blocks] if blocks else []
