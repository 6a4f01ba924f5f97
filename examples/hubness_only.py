"""Hubness-only correction for a monolingual retriever (no language or culture labels used).

Hubness: in high-dimensional embedding spaces a few gallery items ("hubs") sit in the top-k of
very many queries, while others ("anti-hubs") are never retrieved. Score-level normalisers fix
it from a calibration bank alone, without touching the vectors:

* ``CSLS`` (Conneau et al. 2018): ``2 s(q, g) − r_k(q) − r_k(g)``, ``r_k`` the mean similarity
  to the k nearest bank items of the other side;
* ``DualInvertedSoftmax(dynamic=True)`` (DBNorm, Wang et al., EMNLP 2023): two inverted
  softmaxes (over the query bank and the gallery bank), applied only to queries whose top-1 is
  in the bank's activation set.

Two monolingual corpora (``--data``):

* ``synthetic`` (default): a hubby gallery built in a few lines — 64-d vectors sharing one
  direction ``u``; every caption carries ``u``, every image leans towards it by its own random
  amount, so the images that lean most are close to every caption (hubs);
* ``world``: the images of the embedded world and their English captions only (its hubness
  with English queries is mild; with all nine languages, ``t2i/hubness_skew@10`` is 7.8 —
  docs/world.md).

The corpus is split by item into calibration and test; both normalisers are fitted on
calibration, and the script prints, per direction, the hubness skew of the k-occurrence N_10
(with its random-retriever null), the anti-hub share (gallery items in no top-10) and recall@1.

Run::

    python examples/hubness_only.py --out hubness_out
    python examples/hubness_only.py --out hubness_out --data world [--n-items 300]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from xcm_debias import BiasReport, Debiased, EmbeddingSet, ExactRetriever
from xcm_debias.scoring import CSLS, DualInvertedSoftmax
from xcm_debias.worlds import load_scenes

KEYS = (
    "hubness_skew@10",
    "hubness_skew_null@10",
    "hubness_antihub@10",
    "recall@1",
)


def synthetic_hubby(n_items: int, seed: int, dim: int = 64) -> EmbeddingSet:
    """One image and one English caption per item; images leaning towards ``u`` become hubs."""
    rng = np.random.default_rng(seed)
    content = rng.standard_normal((n_items, dim))
    u = rng.standard_normal(dim)
    u *= np.sqrt(dim) / np.linalg.norm(u)  # a shared direction, as long as a content vector
    lean = 0.7 * rng.exponential(1.0, n_items) / 4  # per image: how far it leans towards u
    images = content + lean[:, None] * u
    captions = content + 1.5 * rng.standard_normal((n_items, dim)) + u / 2
    items = np.array([f"item{i:04d}" for i in range(n_items)])
    return EmbeddingSet.concat(
        [
            EmbeddingSet(images.astype(np.float32), modality="image", item=items),
            EmbeddingSet(captions.astype(np.float32), modality="text", item=items, language="en"),
        ]
    )


def english_only(n_items: int, seed: int) -> EmbeddingSet:
    """Images and their English captions: what a monolingual retriever indexes."""
    world = load_scenes("all", seed=seed, n_items=n_items)
    return world[(world.modality == "image") | (world.language == "en")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("hubness_only_out"))
    parser.add_argument("--data", choices=("synthetic", "world"), default="synthetic")
    parser.add_argument(
        "--n-items", type=int, default=None, help="items (default: synthetic 600, world 60)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    if args.data == "synthetic":
        corpus = synthetic_hubby(args.n_items or 600, args.seed)
    else:
        corpus = english_only(args.n_items or 60, args.seed)
    calib, test = corpus.split_items(test_size=0.5, seed=0)
    print(f"calibration: {calib}\ntest:        {test}")

    base = ExactRetriever()
    retrievers = {
        "exact": base,
        "csls": Debiased(base, scoring=CSLS(k=10)).fit(calib),
        "dbnorm": Debiased(base, scoring=DualInvertedSoftmax(dynamic=True)).fit(calib),
    }
    reports = {name: BiasReport.evaluate(r, test) for name, r in retrievers.items()}

    summary = {}
    for direction in ("t2i", "i2t"):
        print(f"\n{direction}: " + "  ".join(f"{name:>8s}" for name in reports))
        for key in KEYS:
            full = f"{direction}/{key}"
            values = [reports[name].metrics[full] for name in reports]
            print(f"  {key:22s}" + "  ".join(f"{v:8.3f}" for v in values))
            summary[full] = dict(zip(reports, values, strict=True))
    (args.out / "hubness.json").write_text(json.dumps(summary, indent=2))
    reports["exact"].compare(reports["dbnorm"]).to_html(args.out / "report.html")
    print(f"\nwrote {args.out / 'hubness.json'} and {args.out / 'report.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
