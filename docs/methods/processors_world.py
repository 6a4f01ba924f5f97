"""Measure the embedding-level processors on the embedded world (fills the docs' tables).

Usage::

    python docs/methods/processors_world.py --seeds 0 1 2                 # every method
    python docs/methods/processors_world.py --seeds 0 1 2 --only leace center

Each configuration is fitted on the world's calibration split (60 items) and measured on its
test split (240 items) with ``BiasReport``; the Markdown table holds means over the seeds.
Chance for own-culture@1 is 1/8 (every item is drawn in all 8 cultures).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable

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
    "decouple oblique": lambda: CultureLanguageDecoupler(),
    "decouple orthogonal": lambda: CultureLanguageDecoupler(method="orthogonal"),
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
    "align → leace": lambda: Chain(LanguageAlignment(), LanguageProjection()),
    "align → leace, cross_fit=5": lambda: Chain(
        LanguageAlignment(), LanguageProjection(), cross_fit=5
    ),
}

COLUMNS = {
    "t2i R@1": "t2i/recall@1",
    "i2t R@1": "i2t/recall@1",
    "own-culture excess@1": "t2i/own_culture_excess@1",
    "i2t language TV@1": "i2t/language_tv@1",
    "t2i skew N10": "t2i/hubness_skew@10",
    "modality gap": "modality_gap",
}


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
    high = [lang for lang in CULTURE_OF_LANGUAGE if lang not in LOW_RESOURCE]
    row["own@1 high-res (min–max)"] = (
        min(metrics[f"t2i/own_culture@1/lang={lang}"] for lang in high),
        max(metrics[f"t2i/own_culture@1/lang={lang}"] for lang in high),
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="*", default=None, help="configuration names")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    names = args.only or list(CONFIGS)
    header = None
    for name in names:
        rows = [measure(name, seed) for seed in args.seeds]
        if header is None:
            header = list(rows[0])
            print("| method | " + " | ".join(header) + " |")
            print("|---" * (len(header) + 1) + "|")
        cells = []
        for column in header:
            values = [row[column] for row in rows]
            if isinstance(values[0], tuple):
                low = np.mean([v[0] for v in values])
                high = np.mean([v[1] for v in values])
                cells.append(f"{low:.2f}–{high:.2f}")
            else:
                cells.append(f"{np.mean(values):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
