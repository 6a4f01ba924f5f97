"""Measure the embedding-level processors on the embedded world (fills the docs' tables).

Usage::

    python docs/methods/processors_world.py --seeds 0 1 2                 # every method
    python docs/methods/processors_world.py --seeds 0 1 2 --only leace center
    python docs/methods/processors_world.py --seeds 0 1 2 --write         # refresh the pages

``--write`` measures every configuration a page shows (``PAGES``) and replaces the table
between the page's markers (``<!-- processors_world.py table -->`` …
``<!-- /processors_world.py table -->``), so a rerun refreshes the measured sections of
docs/methods/{language_projection,language_alignment,decoupling,ot_recenter,invgc,
chain_cross_fit}.md. About ten minutes on 2 CPU cores.

Each configuration is fitted on the world's calibration split (60 items) and measured on its
test split (240 items) with ``BiasReport``; the Markdown table holds means over the seeds.
Chance for own-culture@1 (implicit queries) and named-culture@1 (queries that name a culture)
is 1/8 (every item is drawn in all 8 cultures).
"""

from __future__ import annotations

import argparse
import functools
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from xcm_debias import ExactRetriever
from xcm_debias.debiased import Debiased
from xcm_debias.processors import (
    Chain,
    CultureLanguageDecoupler,
    InvGC,
    LanguageAlignment,
    LanguageProjection,
    OTRecenter,
    PostProcessor,
)
from xcm_debias.report.bias_report import BiasReport
from xcm_debias.worlds import CULTURE_OF_LANGUAGE, LOW_RESOURCE, world_calibration_test

CONFIGS: dict[str, Callable[[], PostProcessor | None]] = {
    "none": lambda: None,
    "center": lambda: LanguageProjection(method="center"),
    "subspace": lambda: LanguageProjection(method="subspace"),
    "subspace (text+image)": lambda: LanguageProjection(
        method="subspace", apply_to=("text", "image")
    ),
    "leace": lambda: LanguageProjection(method="leace"),
    "leace (text+image)": lambda: LanguageProjection(apply_to=("text", "image")),
    "lir": lambda: LanguageProjection(method="lir"),
    "align ridge": lambda: LanguageAlignment(),
    "align procrustes": lambda: LanguageAlignment(method="procrustes"),
    "align contrastive": lambda: LanguageAlignment(method="contrastive"),
    "decouple oblique": lambda: CultureLanguageDecoupler(),
    "decouple orthogonal": lambda: CultureLanguageDecoupler(method="orthogonal"),
    "decouple preference": lambda: CultureLanguageDecoupler(method="preference"),
    "ot mean": lambda: OTRecenter(),
    "ot diag": lambda: OTRecenter(method="diag"),
    "ot lowrank": lambda: OTRecenter(method="lowrank"),
    "ot gaussian": lambda: OTRecenter(method="gaussian"),
    "ot modality": lambda: OTRecenter(groups="modality"),
    "invgc": lambda: InvGC(),
    "align → orthogonal": lambda: Chain(
        LanguageAlignment(), CultureLanguageDecoupler(method="orthogonal")
    ),
    "align → orthogonal, cross_fit=5": lambda: Chain(
        LanguageAlignment(), CultureLanguageDecoupler(method="orthogonal"), cross_fit=5
    ),
    "align → preference": lambda: Chain(
        LanguageAlignment(), CultureLanguageDecoupler(method="preference")
    ),
    "align → preference, cross_fit=5": lambda: Chain(
        LanguageAlignment(), CultureLanguageDecoupler(method="preference"), cross_fit=5
    ),
    "align → leace": lambda: Chain(LanguageAlignment(), LanguageProjection()),
    "align → leace, cross_fit=5": lambda: Chain(
        LanguageAlignment(), LanguageProjection(), cross_fit=5
    ),
}

COLUMNS = {
    "t2i R@1": "t2i/recall@1",
    "i2t R@1": "i2t/recall@1",
    "own-culture excess@1": "t2i/own_culture_excess@1",
    "named-culture@1": "t2i/named_culture@1",
    "i2t language TV@1": "i2t/language_tv@1",
    "t2i skew N10": "t2i/hubness_skew@10",
    "modality gap": "modality_gap",
}


HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- processors_world.py table -->", "<!-- /processors_world.py table -->"

# page -> the configurations its measured table shows (first: the baseline)
PAGES: dict[str, tuple[str, ...]] = {
    "language_projection.md": (
        "none",
        "center",
        "subspace",
        "subspace (text+image)",
        "leace",
        "leace (text+image)",
        "lir",
    ),
    "language_alignment.md": ("none", "align ridge", "align procrustes"),
    "decoupling.md": (
        "none",
        "leace",
        "decouple oblique",
        "decouple orthogonal",
        "decouple preference",
        "align ridge",
        "align → orthogonal",
        "align → preference",
        "align → orthogonal, cross_fit=5",
        "align → preference, cross_fit=5",
    ),
    "ot_recenter.md": ("none", "ot mean", "ot diag", "ot lowrank", "ot gaussian", "ot modality"),
    "invgc.md": ("none", "invgc"),
    "chain_cross_fit.md": (
        "none",
        "align → orthogonal",
        "align → orthogonal, cross_fit=5",
        "align → leace",
        "align → leace, cross_fit=5",
    ),
}


@functools.cache
def measure(name: str, seed: int) -> dict[str, float]:
    calib, test = world_calibration_test(seed=seed)
    processors = CONFIGS[name]()
    retriever = ExactRetriever()
    if processors is not None:
        retriever = Debiased(retriever, processors).fit(calib)
    metrics = BiasReport.evaluate(retriever, test, culture_of_language=CULTURE_OF_LANGUAGE).metrics
    row = {column: metrics[key] for column, key in COLUMNS.items()}
    for lang in LOW_RESOURCE:
        row[f"t2i R@1 {lang}"] = metrics[f"t2i/recall@1/lang={lang}"]
    row["named@1 sw/vi"] = float(
        np.mean([metrics[f"t2i/named_culture@1/lang={lang}"] for lang in LOW_RESOURCE])
    )
    high = [lang for lang in CULTURE_OF_LANGUAGE if lang not in LOW_RESOURCE]
    row["own@1 high-res (min–max)"] = (
        min(metrics[f"t2i/own_culture@1/lang={lang}"] for lang in high),
        max(metrics[f"t2i/own_culture@1/lang={lang}"] for lang in high),
    )
    row["max_l \\|own − chance\\|"] = max(
        abs(metrics[f"t2i/own_culture_excess@1/lang={lang}"]) for lang in CULTURE_OF_LANGUAGE
    )
    return row


def table(names: Sequence[str], seeds: Sequence[int]) -> list[str]:
    """Markdown rows: header, rule, one row per configuration (means over ``seeds``)."""
    lines: list[str] = []
    header: list[str] | None = None
    for name in names:
        rows = [measure(name, seed) for seed in seeds]
        if header is None:
            header = list(rows[0])
            lines.append("| method | " + " | ".join(header) + " |")
            lines.append("|---" * (len(header) + 1) + "|")
        cells = []
        for column in header:
            values = [row[column] for row in rows]
            if isinstance(values[0], tuple):
                low = np.mean([v[0] for v in values])
                high = np.mean([v[1] for v in values])
                cells.append(f"{low:.2f}–{high:.2f}")
            else:
                cells.append(f"{np.mean(values):.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write_page(page: Path, lines: list[str], seeds: Sequence[int]) -> None:
    """Replace the table between the page's markers (which must be there, once each)."""
    text = page.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"{page}: expected one {BEGIN!r} … {END!r} block")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    seeds_text = ", ".join(map(str, seeds))
    block = [BEGIN, f"Means over world seeds {seeds_text}:", "", *lines, END]
    page.write_text(head + "\n".join(block) + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="*", default=None, help="configuration names")
    parser.add_argument(
        "--write", action="store_true", help="refresh the tables of the pages in PAGES"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    if args.write:
        for page, names in PAGES.items():
            lines = table(names, args.seeds)
            write_page(HERE / page, lines, args.seeds)
            print(f"{page}:", *lines, sep="\n", flush=True)
        return
    for line in table(args.only or list(CONFIGS), args.seeds):
        print(line, flush=True)


if __name__ == "__main__":
    main()
