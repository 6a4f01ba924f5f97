"""LanguageAlignment variants on real text: Multi30K captions (USE-m3), per-language text→image R@1.

Usage::

    python benchmarks/real_text_alignment.py /work/shared/data/multi30k --write
    python benchmarks/real_text_alignment.py DATA_DIR --fractions 0.1 0.25 --variants ridge

Same development case as ``benchmarks/real_text.py`` (English sentences play the images; the
German, French and Czech sentences are captions). For every variant and calibration size
(a seeded fraction of the val lines):

* **out-of-fold** on calibration — the lines are dealt to 5 folds; each fold's captions are
  transformed by the variant fitted on the other folds and ranked against that fold's "images"
  (so galleries are a fifth of calibration, and recall is higher than on test). This is the
  number a variant is chosen by;
* **test** — fitted on the whole calibration subset, measured on test_2016_flickr (1000 lines).

Writes ``benchmarks/results/real_text_alignment.json``; ``--write`` also replaces the table
between ``<!-- real_text_alignment.py table -->`` markers in docs/methods/language_alignment.md.
Skips (exit 0) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks._multi30k import CAPTION_LANGUAGES, load_split  # noqa: E402
from xcm_debias import EmbeddingSet  # noqa: E402
from xcm_debias.processors import LanguageAlignment  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "real_text_alignment.json"
PAGE = ROOT / "docs" / "methods" / "language_alignment.md"
BEGIN, END = "<!-- real_text_alignment.py table -->", "<!-- /real_text_alignment.py table -->"
N_FOLDS = 5

VARIANTS: dict[str, dict[str, Any]] = {
    "ridge → centroid": {"method": "ridge", "target": "centroid"},
    "ridge → image": {"method": "ridge", "target": "image"},
    "procrustes → centroid": {"method": "procrustes", "target": "centroid"},
    "contrastive → centroid": {"method": "contrastive", "target": "centroid"},
    "contrastive → image": {"method": "contrastive", "target": "image"},
}


def recall_at_1(data: EmbeddingSet, processor: LanguageAlignment | None) -> dict[str, float]:
    """Text→image R@1 per caption language (images unchanged; one image per item)."""
    out = data if processor is None else processor.transform(data)
    images = out.images
    gallery = torch.nn.functional.normalize(images.embeddings, dim=1)
    recall = {}
    for language in CAPTION_LANGUAGES:
        texts = out.where(language=language)
        top = (texts.embeddings @ gallery.T).argmax(dim=1).numpy()
        recall[language] = float((images.item[top] == texts.item).mean())
    return recall


def subset(data: EmbeddingSet, fraction: float, seed: int) -> EmbeddingSet:
    if fraction >= 1.0:
        return data
    items = np.unique(data.item)
    keep = np.random.default_rng(seed).choice(
        items, size=max(N_FOLDS, int(round(fraction * len(items)))), replace=False
    )
    return data[np.isin(data.item, keep)]


def out_of_fold(calibration: EmbeddingSet, params: dict[str, Any]) -> dict[str, float]:
    """Mean over folds of the held-out fold's R@1 per language (fitted on the other folds)."""
    items = np.unique(calibration.item)
    folds = np.random.default_rng(1).permutation(len(items)) % N_FOLDS
    per_fold = []
    for fold in range(N_FOLDS):
        held = np.isin(calibration.item, items[folds == fold])
        fitted = LanguageAlignment(**params).fit(calibration[~held])
        per_fold.append(recall_at_1(calibration[held], fitted))
    return {lang: float(np.mean([r[lang] for r in per_fold])) for lang in CAPTION_LANGUAGES}


def markdown(result: dict[str, Any]) -> list[str]:
    lines = [
        "| variant | calibration lines | out-of-fold R@1 cs / de / fr | test R@1 cs / de / fr | "
        "fit (s) |",
        "|---|---|---|---|---|",
    ]
    base = result["base_test"]
    lines.append(f"| none | — | — | {base['cs']:.3f} / {base['de']:.3f} / {base['fr']:.3f} | — |")
    for row in result["rows"]:
        o, t = row["out_of_fold"], row["test"]
        lines.append(
            f"| {row['variant']} | {row['calibration_items']} | "
            f"{o['cs']:.3f} / {o['de']:.3f} / {o['fr']:.3f} | "
            f"{t['cs']:.3f} / {t['de']:.3f} / {t['fr']:.3f} | {row['fit_s']:.1f} |"
        )
    return lines


def write_page(lines: list[str]) -> None:
    page = PAGE.read_text(encoding="utf-8")
    start, stop = page.index(BEGIN) + len(BEGIN), page.index(END)
    PAGE.write_text(page[:start] + "\n" + "\n".join(lines) + "\n" + page[stop:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 1.0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0, help="draws the calibration subsets")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--write", action="store_true", help="refresh the docs table")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"real_text_alignment: skipped: data folder {args.data_dir} not found")
        return 0
    warnings.simplefilter("ignore", UserWarning)
    calibration_all = load_split(args.data_dir, "val", args.cache)
    test = load_split(args.data_dir, "test_2016_flickr", args.cache)
    result: dict[str, Any] = {"base_test": recall_at_1(test, None), "rows": []}
    for fraction in sorted(args.fractions):
        calibration = subset(calibration_all, fraction, args.seed)
        for variant in args.variants:
            params = VARIANTS[variant]
            start = time.perf_counter()
            fitted = LanguageAlignment(**params).fit(calibration)
            fit_s = time.perf_counter() - start
            row = {
                "variant": variant,
                "params": params,
                "fraction": fraction,
                "calibration_items": int(len(np.unique(calibration.item))),
                "out_of_fold": out_of_fold(calibration, params),
                "test": recall_at_1(test, fitted),
                "fitted_meta": fitted.fitted_meta,
                "fit_s": fit_s,
            }
            result["rows"].append(row)
            print(json.dumps({k: row[k] for k in ("variant", "fraction", "out_of_fold", "test")}))
            # written after every row: partial results survive an interrupted run
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
            if args.write:
                write_page(markdown(result))
    print("\n".join(markdown(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
