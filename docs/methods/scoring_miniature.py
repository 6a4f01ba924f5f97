"""Reproduces the tables of docs/methods/{inverted_softmax,qb_norm,...}.md on a synthetic miniature.

A world in the spirit of the embedded one (docs/world.md), made of Gaussian vectors in 64-d: 1000 items, one image each
(culture = one of 7 languages, plus a shared "popularity" direction that makes hub images), one
caption per language. Captions lean towards their language's culture (cultural tugging),
English captions also towards their own image (prevalence), and sw/vi captions are noisier.
Fit on 500 items (calibration), measure on the other 500 (3500 text queries, 500 image
queries). About one minute on 2 CPU cores.

    python docs/methods/scoring_miniature.py
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import skew

from xcm_debias import EmbeddingSet, ExactRetriever
from xcm_debias.configs import build
from xcm_debias.debiased import Debiased
from xcm_debias.processors import LanguageProjection
from xcm_debias.scoring import (
    CSLS,
    DualInvertedSoftmax,
    GroupBalance,
    InvertedSoftmax,
    QBNorm,
    SinkhornNorm,
)
from xcm_debias.tune import top1_metrics

LANGUAGES = ("en", "de", "fr", "ja", "it", "sw", "vi")
NOISE = {"sw": 1.2, "vi": 1.2}


def miniature(n_items: int = 1000, dim: int = 64, seed: int = 0) -> EmbeddingSet:
    g = torch.Generator().manual_seed(seed)
    content = torch.randn(n_items, dim, generator=g)
    culture_dir = 0.8 * torch.randn(len(LANGUAGES), dim, generator=g)
    hub_dir = torch.randn(dim, generator=g)
    culture = torch.arange(n_items) % len(LANGUAGES)
    popularity = torch.rand(n_items, generator=g)[:, None]  # some images are hubs
    image = content + culture_dir[culture] + 1.5 * popularity * hub_dir
    image = image + 0.5 * torch.randn(n_items, dim, generator=g)
    parts, items, langs = [], [], []
    for li, lang in enumerate(LANGUAGES):
        noise = NOISE.get(lang, 0.6)
        caption = content + 0.9 * culture_dir[li] + noise * torch.randn(n_items, dim, generator=g)
        if lang == "en":
            caption = caption + 0.5 * image
        parts.append(caption)
        items += [f"item{i}" for i in range(n_items)]
        langs += [lang] * n_items
    return EmbeddingSet.concat(
        [
            EmbeddingSet(
                image,
                modality="image",
                item=[f"item{i}" for i in range(n_items)],
                culture=[LANGUAGES[int(c)] for c in culture],
            ),
            EmbeddingSet(torch.cat(parts), modality="text", item=items, language=langs),
        ]
    )


def hubness_skew(retriever, queries: EmbeddingSet, gallery: EmbeddingSet, k: int = 10) -> float:
    """Skewness of N_k over all gallery items, zeros included (Radovanović et al. 2010)."""
    indices = retriever.search(queries, gallery, k).indices.flatten().numpy()
    return float(skew(np.bincount(indices, minlength=len(gallery))))


def main() -> None:
    calibration, test = miniature().split_items(test_size=0.5, seed=0)
    methods = {
        "raw": None,
        "InvertedSoftmax(β=20)": InvertedSoftmax(),
        "QBNorm(β=20, k=1)": QBNorm(),
        "DualInvertedSoftmax(20, 20)": DualInvertedSoftmax(20.0, 20.0),
        "DualInvertedSoftmax(dynamic)": DualInvertedSoftmax(20.0, 20.0, dynamic=True),
        "CSLS(k=10)": CSLS(),
        "SinkhornNorm(β=20, T=4)": SinkhornNorm(),
        "GroupBalance(τ=0.02)": GroupBalance(),
    }
    rows = []
    for name, scoring in methods.items():
        fair = Debiased(ExactRetriever(), scoring=scoring).fit(calibration)
        rows.append((name, fair))
    chain = [InvertedSoftmax(), GroupBalance()]
    for cross_fit in (False, 5):
        fair = Debiased(ExactRetriever(), scoring=chain, cross_fit=cross_fit).fit(calibration)
        rows.append((f"InvertedSoftmax + GroupBalance, cross_fit={cross_fit}", fair))
    eraser = LanguageProjection(method="leace")
    fair = Debiased(ExactRetriever(), eraser, scoring=chain, cross_fit=5).fit(calibration)
    rows.append(("LanguageProjection(leace) + InvertedSoftmax + GroupBalance, cross_fit=5", fair))
    rows.append(("build(\"world_tuned\")", build("world_tuned").fit(calibration)))
    print(
        "| method | t2i R@1 | i2t R@1 | i2t language TV@1 | t2i own-culture |excess| "
        "| t2i skew N10 | i2t skew N10 |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, fair in rows:
        m = top1_metrics(fair, test)
        print(
            f"| {name} | {m['t2i/recall@1']:.3f} | {m['i2t/recall@1']:.3f} "
            f"| {m['i2t/language_tv@1']:.3f} | {m['t2i/own_culture_abs_excess@1']:.3f} "
            f"| {hubness_skew(fair, test.texts, test.images):.2f} "
            f"| {hubness_skew(fair, test.images, test.texts):.2f} |"
        )


if __name__ == "__main__":
    main()
