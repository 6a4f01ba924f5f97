"""Label-free search on the embedded world: the recommended chain with every search-time
``language`` and ``culture`` label removed (inferred by the fitted label models) against the
same fitted chain given the true labels.

Usage::

    python benchmarks/label_inference.py                # seeds 0 1 2, writes the JSON
    python benchmarks/label_inference.py --seeds 0 --no-write

For each world seed the recommended chain is fitted once on the calibration split (labelled, as
calibration sets are) and evaluated on the test split with ``BiasReport``: with the test rows'
labels, and through a wrapper that strips ``language`` and ``culture`` from every query and
gallery row before the chain sees them (the report still scores with the true labels). The
captions keep their strings (the ``caption`` column, as the encoders write it), so the label
models read a caption's language from its string; **embeddings only** is the same search with
the strings ignored (``LabelModels.text_column = None``: every label inferred from the
embeddings). The ten targets of ``benchmarks/methods_on_world.py`` are checked, and the quantity
behind each target is compared: the issue asks each to stay within 0.02 of the labelled run.

``--ablation`` (embeddings only): the captions the embedding classifier misidentifies given
their gold label (one-hot), every other inferred row kept as inferred — how much of the gap
those rows make.

Also measured, on embeddings only (``--mix``): per-language maps applied to an inferred row as the posterior mix
``Σ_L p_L(x) x W_L`` instead of the confident argmax's map (the shipped rule). And
(``--variants``) two other inference rules: **argmax offsets**, a confident inferred row's
per-group offsets taken from its most probable group (one-hot, as a labelled row's) instead of
posterior-weighted; **shrinkage by NLL**, each label classifier refitted with the covariance
shrinkage (Ledoit–Wolf or a fixed value of :data:`SHRINKAGES`) whose out-of-fold negative
log-likelihood on calibration is least; and both together.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from methods_on_world import check_targets, measure  # noqa: E402

from xcm_debias import EmbeddingSet, ExactRetriever  # noqa: E402
from xcm_debias.calibration.labels import LabelClassifier  # noqa: E402
from xcm_debias.configs import build, get_config  # noqa: E402
from xcm_debias.gallery_cache import GalleryCache  # noqa: E402
from xcm_debias.processors import (
    Chain,  # noqa: E402
    LanguageAlignment,  # noqa: E402
    _stats,  # noqa: E402
)
from xcm_debias.report.label_free import LABELS, LabelFreeRetriever  # noqa: E402
from xcm_debias.soft_labels import (  # noqa: E402
    confident_name,
    inferred_rows,
    soft_classes,
    soft_labels,
    strip_labels,
    with_inferred,
)
from xcm_debias.worlds import world_calibration_test  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "label_inference.json"
DOC = ROOT / "docs" / "label_inference.md"
BOUND = 0.02
SHRINKAGES: tuple[str | float, ...] = ("ledoit-wolf", 0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8)

# quantity behind each of the ten targets: (label, metric key or a function of (base, run))
TARGETS: list[tuple[str, Any]] = [
    ("max_l |own-culture@1 − chance|", "t2i/own_culture_max_abs_excess@1"),
    ("i2t language TV@1", "i2t/language_tv@1"),
    ("t2i MRV", "t2i/mrv"),
    ("i2t MRV", "i2t/mrv"),
    ("t2i recall@1", "t2i/recall@1"),
    ("t2i worst language recall@1 − baseline", ("t2i", "lang")),
    ("i2t recall@1", "i2t/recall@1"),
    ("i2t worst culture recall@1 − baseline", ("i2t", "culture")),
    ("t2i hubness skew@10", "t2i/hubness_skew@10"),
    ("i2t hubness skew@10", "i2t/hubness_skew@10"),
]


class ArgmaxOffsets(LabelFreeRetriever):
    """Label-free search whose confident inferred rows carry a one-hot soft label (their most
    probable group) instead of the posterior: per-group offsets as if the row were labelled."""

    def stripped(self, data: EmbeddingSet) -> EmbeddingSet:
        kept = self._stripped.get(id(data))
        if kept is None or kept[0] is not data:
            filled = self.retriever.label_models_.fill(strip_labels(data, LABELS))
            for label in LABELS:
                filled = one_hot_when_confident(filled, label)
            kept = self._stripped[id(data)] = (data, filled)
        return kept[1]


def one_hot_when_confident(data: EmbeddingSet, label: str) -> EmbeddingSet:
    """``data`` with the soft labels of its confident inferred rows made one-hot (argmax)."""
    classes, rows = soft_classes(data, label), inferred_rows(data, label)
    if not classes or not rows.any():
        return data
    p = soft_labels(data[rows], label, classes)
    sure = data.extra[confident_name(label)][rows].astype(bool)
    p[sure] = np.eye(len(classes), dtype=np.float32)[p[sure].argmax(axis=1)]
    return with_inferred(data, label, rows, classes, p, data.label(label)[rows], sure)


class ErrorsToGold(LabelFreeRetriever):
    """Label-free search whose misidentified inferred rows get their gold label (one-hot),
    except the rows whose ``(item, language)`` is in ``keep`` (left misidentified)."""

    def __init__(self, retriever: Any, keep: frozenset[tuple[str, str]] = frozenset()) -> None:
        super().__init__(retriever)
        self.keep = keep

    def stripped(self, data: EmbeddingSet) -> EmbeddingSet:
        kept = self._stripped.get(id(data))
        if kept is None or kept[0] is not data:
            filled = self.retriever.label_models_.fill(strip_labels(data, LABELS))
            keys = list(zip(data.item.tolist(), data.language.tolist(), strict=True))
            kept_wrong = np.array([key in self.keep for key in keys], dtype=bool)
            for label in LABELS:
                classes = soft_classes(filled, label)
                wrong = inferred_rows(filled, label) & (filled.label(label) != data.label(label))
                wrong &= ~kept_wrong
                if classes and wrong.any():
                    gold = data.label(label)[wrong]
                    p = (np.asarray(classes)[None, :] == gold[:, None]).astype(np.float32)
                    sure = np.ones(len(gold), dtype=bool)
                    filled = with_inferred(filled, label, wrong, classes, p, gold, sure)
            kept = self._stripped[id(data)] = (data, filled)
        return kept[1]


def embeddings_only(fair: Any) -> Any:
    """A shallow copy of the fitted chain whose label models ignore the strings."""
    out = copy.copy(fair)
    out.label_models_ = copy.deepcopy(fair.label_models_)
    out.label_models_.text_column = None
    out._cache = GalleryCache()
    return out


def shrinkage_by_nll(fair: Any, calibration: EmbeddingSet) -> tuple[Any, dict[str, Any]]:
    """A shallow copy of the fitted chain whose label classifiers are refitted with the
    shrinkage of least out-of-fold NLL among :data:`SHRINKAGES`."""
    models = copy.deepcopy(fair.label_models_)
    chosen = {}
    for label, model in list(models.models.items()):
        fits = [
            LabelClassifier(label, model.modality, shrinkage=value, seed=model.seed).fit(
                calibration
            )
            for value in SHRINKAGES
        ]
        best = min(fits, key=lambda fit: fit.fitted_meta["nll"])
        models.models[label] = best
        chosen[label] = best.shrinkage
    out = copy.copy(fair)
    out.label_models_ = models
    out._cache = GalleryCache()
    return out, chosen


class MixedAlignment(LanguageAlignment):
    """LanguageAlignment whose inferred rows take ``Σ_L p_L x W_L + (1 − Σ_L p_L) x``."""

    def forward(self, x: torch.Tensor, data: EmbeddingSet) -> torch.Tensor:
        out = super().forward(x, data)
        inferred = inferred_rows(data, "language")
        if not inferred.any():
            return out
        languages = self.fitted_meta["languages"]
        p = torch.from_numpy(soft_labels(data[inferred], "language", languages))
        rows = _stats.unit_rows(x[torch.from_numpy(inferred)].float())
        mixed = rows * (1 - p.sum(dim=1, keepdim=True))
        for lang in range(len(languages)):
            mixed += p[:, lang : lang + 1] * (rows @ self.maps[lang])
        out[torch.from_numpy(inferred)] = mixed
        return out


def mixed(fair: Any) -> Any:
    """A shallow copy of the fitted chain whose alignment mixes its maps by posterior."""
    chain = isinstance(fair.processors, Chain)
    source = fair.processors.steps[0] if chain else fair.processors
    assert isinstance(source, LanguageAlignment), "the recommended chain starts with alignment"
    mix = MixedAlignment(**source.get_params())
    for name, value in source.state_dict().items():
        mix.set_state(name, value)
    mix.fitted_meta = dict(source.fitted_meta)
    out = copy.copy(fair)
    if chain:  # alignment, then the chain's other fitted steps as they are
        out.processors = copy.copy(fair.processors)
        out.processors.steps = torch.nn.ModuleList([mix, *fair.processors.steps[1:]])
    else:
        out.processors = mix
    out._cache = GalleryCache()
    return out


def one_error_at_a_time(
    vectors: Any, test: EmbeddingSet, base: dict[str, float], labelled: dict[str, float]
) -> list[dict[str, Any]]:
    """Per caption misidentified from the embeddings: the label-free search with only that
    caption left wrong (every other misidentified row given its gold label), as the change of
    the image→text MRV and hubness skew@10 from the labelled run."""
    filled = vectors.label_models_.fill(strip_labels(test.texts, LABELS))
    wrong = np.flatnonzero(filled.language != test.texts.language)
    out = []
    for row in wrong:
        key = (str(test.texts.item[row]), str(test.texts.language[row]))
        run = measure(ErrorsToGold(vectors, frozenset([key])), test)
        out.append(
            {
                "item": key[0],
                "language": key[1],
                "inferred": str(filled.language[row]),
                "caption": str(test.texts.extra["caption"][row]),
                **{
                    name: quantity(spec, base, run) - quantity(spec, base, labelled)
                    for name, spec in TARGETS
                    if name in ("i2t MRV", "i2t hubness skew@10")
                },
            }
        )
    return out


def quantity(spec: Any, base: dict[str, float], run: dict[str, float]) -> float:
    if isinstance(spec, str):
        return run[spec]
    direction, group = spec
    prefix = f"{direction}/recall@1/{group}="
    return min(run[k] - base[k] for k in base if k.startswith(prefix))


def run_seed(seed: int, with_mix: bool, with_variants: bool, ablation: bool) -> dict[str, Any]:
    calib, test = world_calibration_test(seed=seed)
    base = measure(ExactRetriever(), test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fair = build(get_config("recommended")).fit(calib)
    vectors = embeddings_only(fair)
    runs = {
        "labelled": measure(fair, test),
        "label-free": measure(LabelFreeRetriever(fair), test),
        "embeddings only": measure(LabelFreeRetriever(vectors), test),
    }
    if with_mix:
        runs["embeddings only, mixed maps"] = measure(LabelFreeRetriever(mixed(vectors)), test)
    single: list[dict[str, Any]] = []
    if ablation:
        runs["embeddings only, errors given gold"] = measure(ErrorsToGold(vectors), test)
        single = one_error_at_a_time(vectors, test, base, runs["labelled"])
    chosen_shrinkage = None
    if with_variants:
        by_nll, chosen_shrinkage = shrinkage_by_nll(vectors, calib)
        runs["argmax offsets"] = measure(ArgmaxOffsets(vectors), test)
        runs["shrinkage by NLL"] = measure(LabelFreeRetriever(by_nll), test)
        runs["both"] = measure(ArgmaxOffsets(by_nll), test)
    accuracy, wrong = {}, {}
    for name, models in (("label-free", fair), ("embeddings only", vectors)):
        filled = models.label_models_.fill(strip_labels(test))
        for label, model in models.label_models_.models.items():  # the labels it infers
            rows = test.modality == model.modality
            right = filled.label(label)[rows] == test.label(label)[rows]
            accuracy[f"{label}, {name}"] = float(right.mean())
            wrong[f"{label}, {name}"] = int((~right).sum())
    out: dict[str, Any] = {
        "seed": seed,
        "baseline": base,
        "chosen": None if fair.selection_ is None else fair.selection_.chosen,
        "label_models": fair.label_models_.summary(),
        "test_accuracy": accuracy,
        "test_wrong": wrong,
        "shrinkage_by_nll": chosen_shrinkage,
        "one_error_at_a_time": single,
        "runs": {},
    }
    for name, metrics in runs.items():
        out["runs"][name] = {
            "quantities": {label: quantity(spec, base, metrics) for label, spec in TARGETS},
            "metrics": metrics,
        }
    return out


SHIPPED = ("labelled", "label-free", "embeddings only", "embeddings only, mixed maps")
GAPS = ("label-free", "embeddings only")


def table(results: list[dict[str, Any]]) -> list[str]:
    names = [name for name in results[0]["runs"] if name in SHIPPED]
    head = "| target quantity | " + " | ".join(f"{n} (mean)" for n in names)
    head += "".join(f" | max over seeds of |{n} − labelled|" for n in GAPS) + " |"
    lines = [head, "|---" * (len(names) + len(GAPS) + 1) + "|"]
    for label, _ in TARGETS:
        means = [np.mean([r["runs"][n]["quantities"][label] for r in results]) for n in names]
        cells = " | ".join(f"{m:.3f}" for m in means)
        for name in GAPS:
            gap = max(
                abs(
                    r["runs"][name]["quantities"][label]
                    - r["runs"]["labelled"]["quantities"][label]
                )
                for r in results
            )
            cells += f" | {gap:.3f} {'✓' if gap <= BOUND else '✗'}"
        lines.append(f"| {label} | {cells} |")
    base = mean_of([r["baseline"] for r in results])
    checks = [
        check_targets(base, mean_of([r["runs"][n]["metrics"] for r in results])) for n in names
    ]
    lines.append(
        "| targets passed (means over seeds) | "
        + " | ".join(f"{sum(ok for _, ok, _ in c)}/{len(c)}" for c in checks)
        + " |" * (len(GAPS) + 1)
    )
    return lines


def gaps_table(results: list[dict[str, Any]]) -> list[str]:
    """Per target and inference rule: the largest |rule − labelled| over seeds (and its seed)."""
    names = [name for name in results[0]["runs"] if name != "labelled"]
    lines = ["| target quantity | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    worst = dict.fromkeys(names, 0.0)
    for label, _ in TARGETS:
        cells = []
        for name in names:
            gaps = [
                (
                    abs(
                        r["runs"][name]["quantities"][label]
                        - r["runs"]["labelled"]["quantities"][label]
                    ),
                    r["seed"],
                )
                for r in results
            ]
            gap, seed = max(gaps)
            worst[name] = max(worst[name], gap)
            where = f" (seed {seed})" if gap > 0 else ""
            cells.append(f"{gap:.4f}{where} {'✓' if gap <= BOUND else '✗'}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| largest | " + " | ".join(f"{worst[n]:.4f}" for n in names) + " |")
    return lines


def single_error_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| seed | caption (true → inferred language) | i2t MRV − labelled | "
        "i2t hubness skew@10 − labelled |",
        "|---|---|---|---|",
    ]
    for r in results:
        for e in r["one_error_at_a_time"]:
            lines.append(
                f"| {r['seed']} | {e['caption']} ({e['language']} → {e['inferred']}) | "
                f"{e['i2t MRV']:+.4f} | {e['i2t hubness skew@10']:+.4f} |"
            )
    return lines


def mean_of(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = set.intersection(*(set(r) for r in runs))
    return {k: float(np.mean([r[k] for r in runs])) for k in keys}


def classifier_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| seed | label | cross-fitted accuracy | ECE | temperature | test split: wrong, "
        "label-free | test split: wrong, embeddings only |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for label, s in r["label_models"].items():
            lines.append(
                f"| {r['seed']} | {label} | {s['accuracy']:.4f} | {s['ece']:.4f} | "
                f"{s['temperature']:.2f} | {r['test_wrong'][f'{label}, label-free']} | "
                f"{r['test_wrong'][f'{label}, embeddings only']} |"
            )
    return lines


# ------------------------------------------------------------------ Multi30K (development data)
M30K_LANGUAGES = ("de", "fr", "cs")  # captions; the English sentence plays the "image"
M30K_SPLITS = {"calibration": "val", "test": "test_2016_flickr"}


def multi30k_sets(folder: Path, cache: Path) -> dict[str, EmbeddingSet]:
    """Calibration (val) and test (test_2016_flickr) sets: per line, the English sentence as an
    image row (no culture) and its de/fr/cs translations as captions (their strings in the
    ``caption`` column, as the encoders keep them); USE-m3, cached in ``cache``."""
    from xcm_debias.encoders import USEEncoder

    if not cache.exists():
        encoder = USEEncoder()
        arrays = {}
        for split in M30K_SPLITS.values():
            for lang in ("en", *M30K_LANGUAGES):
                lines = (folder / f"{split}.{lang}").read_text(encoding="utf-8").splitlines()
                arrays[f"{split}.{lang}"] = encoder.embed_texts(lines).numpy()
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **arrays)
    arrays = dict(np.load(cache))
    out = {}
    for name, split in M30K_SPLITS.items():
        english = arrays[f"{split}.en"]
        items = [f"{split}-{i}" for i in range(len(english))]
        blank = np.full(len(english), "")  # images carry no string (as on the world)
        parts = [EmbeddingSet(english, modality="image", item=items, extra={"caption": blank})]
        for lang in M30K_LANGUAGES:
            lines = (folder / f"{split}.{lang}").read_text(encoding="utf-8").splitlines()
            parts.append(
                EmbeddingSet(
                    arrays[f"{split}.{lang}"],
                    modality="text",
                    item=items,
                    language=lang,
                    extra={"caption": np.asarray(lines)},
                )
            )
        out[name] = EmbeddingSet.concat(parts)
    return out


def retrieval_metrics(retriever: Any, test: EmbeddingSet) -> dict[str, float]:
    """t2i recall@1 (overall and per language), i2t recall@1 and i2t language TV@1 (top-1
    caption languages against the gallery's language mix)."""
    texts, images = test.texts, test.images
    out: dict[str, float] = {}
    top = retriever.search(texts, images, 1).indices[:, 0].numpy()
    right = images.item[top] == texts.item
    out["t2i/recall@1"] = float(right.mean())
    for lang in M30K_LANGUAGES:
        out[f"t2i/recall@1/lang={lang}"] = float(right[texts.language == lang].mean())
    top = retriever.search(images, texts, 1).indices[:, 0].numpy()
    out["i2t/recall@1"] = float((texts.item[top] == images.item).mean())
    shares = np.array([(texts.language == lang).mean() for lang in M30K_LANGUAGES])
    top1 = np.array([(texts.language[top] == lang).mean() for lang in M30K_LANGUAGES])
    out["i2t/language_tv@1"] = float(0.5 * np.abs(top1 - shares).sum())
    return out


def run_multi30k(folder: Path, cache: Path) -> dict[str, Any]:
    sets = multi30k_sets(folder, cache)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fair = build(get_config("recommended")).fit(sets["calibration"])
        test = sets["test"]
        vectors = embeddings_only(fair)
        runs = {
            "base": retrieval_metrics(ExactRetriever(), test),
            "labelled": retrieval_metrics(fair, test),
            "label-free": retrieval_metrics(LabelFreeRetriever(fair), test),
            "embeddings only": retrieval_metrics(LabelFreeRetriever(vectors), test),
            "embeddings only, mixed maps": retrieval_metrics(
                LabelFreeRetriever(mixed(vectors)), test
            ),
            "argmax offsets": retrieval_metrics(ArgmaxOffsets(vectors), test),
        }
    confusion = {}
    for name, models in (("label-free", fair), ("embeddings only", vectors)):
        filled = models.label_models_.fill(strip_labels(test.texts))
        confusion[name] = {
            truth: {
                guess: int(((test.texts.language == truth) & (filled.language == guess)).sum())
                for guess in M30K_LANGUAGES
            }
            for truth in M30K_LANGUAGES
        }
    return {
        "chosen": None if fair.selection_ is None else fair.selection_.chosen,
        "label_models": fair.label_models_.summary(),
        "confusion": confusion,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--mix", action="store_true", help="also run posterior-mixed maps (embeddings only)"
    )
    parser.add_argument(
        "--variants",
        action="store_true",
        help="also run argmax offsets and shrinkage chosen by out-of-fold NLL (embeddings only)",
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also run embeddings only with the misidentified rows given their gold label",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--multi30k", type=Path, help="Multi30K folder: run the real-text case instead"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "xcm_debias" / "multi30k_use.npz",
        help="USE-m3 embeddings cache of the Multi30K case (outside the repository)",
    )
    args = parser.parse_args()
    if args.multi30k is not None:
        if not args.multi30k.is_dir():
            sys.exit(f"--multi30k: no such folder {args.multi30k}; skipping the real-text case")
        result = run_multi30k(args.multi30k, args.cache)
        print(json.dumps(result, indent=1))
        if not args.no_write:
            path = RESULTS.with_name("label_inference_multi30k.json")
            path.write_text(json.dumps(result, indent=1) + "\n")
            print(f"wrote {path.relative_to(ROOT)}")
        return
    results = [run_seed(seed, args.mix, args.variants, args.ablation) for seed in args.seeds]
    lines = table(results) + [""] + gaps_table(results) + [""] + classifier_table(results)
    if args.ablation:
        lines += [""] + single_error_table(results)
    print("\n".join(lines))
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
