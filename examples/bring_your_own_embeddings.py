"""Bring your own embeddings: numpy arrays + labels → EmbeddingSet → debias → report → save.

Any dual encoder works: all xcm_debias needs is one vector per image and per caption, and the
labels that say which rows belong together (``item``), what each row is (``modality``), the
language of each caption and (optionally) the culture of each image.

This script plays the user: it takes the vectors of the embedded world as plain numpy arrays
(stand-ins for the output of your own encoder), then

1. builds an ``EmbeddingSet`` from the arrays and labels, and saves it as ``.npz`` and
   ``.parquet`` — the two single-file formats;
2. loads it back (``EmbeddingSet.load`` picks the format by suffix);
3. splits it by item into calibration and test halves (``split_items``);
4. composes a pipeline by hand — a LEACE language eraser, then the culture–language decoupler,
   then the dual inverted softmax on scores — and fits it on the calibration half;
5. reports before/after on the test half;
6. saves the fitted pipeline (one ``.safetensors`` file, no pickle), loads it back and checks
   that the reloaded pipeline ranks exactly as the original.

Run::

    python examples/bring_your_own_embeddings.py --out byo_out [--n-items 300]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from xcm_debias import BiasReport, Debiased, EmbeddingSet, ExactRetriever
from xcm_debias.processors import CultureLanguageDecoupler, LanguageProjection
from xcm_debias.scoring import DualInvertedSoftmax
from xcm_debias.worlds import load_scenes


def your_encoder_output(n_items: int, seed: int) -> dict[str, np.ndarray]:
    """Stand-in for your encoder: plain arrays (float32 vectors and string labels)."""
    world = load_scenes("all", seed=seed, n_items=n_items)
    images, texts = world.images, world.texts
    return {
        "img_emb": images.embeddings.numpy(),  # [n_images, D]
        "img_item": images.item,  # which content each image shows
        "img_culture": images.culture,  # where each image comes from (optional)
        "txt_emb": texts.embeddings.numpy(),  # [n_captions, D]
        "txt_item": texts.item,  # which image(s) each caption describes
        "txt_lang": texts.language,  # BCP-47 code of each caption
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bring_your_own_embeddings_out"))
    parser.add_argument("--n-items", type=int, default=60, help="world size (full world: 300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    # 1. Arrays + labels → one EmbeddingSet holding both modalities.
    a = your_encoder_output(args.n_items, args.seed)
    corpus = EmbeddingSet.concat(
        [
            EmbeddingSet(
                a["img_emb"], modality="image", item=a["img_item"], culture=a["img_culture"]
            ),
            EmbeddingSet(a["txt_emb"], modality="text", item=a["txt_item"], language=a["txt_lang"]),
        ]
    )
    npz_path = corpus.save(args.out / "corpus.npz")
    parquet_path = corpus.save(args.out / "corpus.parquet")
    print(f"saved {len(corpus)} rows ({corpus.dim}-d) to {npz_path} and {parquet_path}")

    # 2. Load: the format follows the suffix; both files hold the same rows and labels.
    corpus = EmbeddingSet.load(npz_path)
    from_parquet = EmbeddingSet.load(parquet_path)
    assert torch.equal(corpus.embeddings, from_parquet.embeddings)
    assert (corpus.item == from_parquet.item).all()
    print(f"loaded: {corpus}")

    # 3. Calibration / test with disjoint items (an item's images and captions stay together).
    calib, test = corpus.split_items(test_size=0.5, seed=0)
    print(f"calibration items: {len(set(calib.item))}, test items: {len(set(test.item))}")

    # 4. A hand-composed pipeline: processors chain with `|`, scoring works on the scores.
    base = ExactRetriever()
    fair = Debiased(
        base,
        LanguageProjection("leace") | CultureLanguageDecoupler(method="oblique"),
        scoring=DualInvertedSoftmax(),
    )
    fair.fit(calib)  # never sees a test row

    # 5. Before / after on the test half. Cultures here are named after their languages, so the
    # default culture_of_language (culture label == language code) applies.
    before = BiasReport.evaluate(base, test)
    after = BiasReport.evaluate(fair, test)
    comparison = before.compare(after)
    comparison.to_html(args.out / "report.html")
    for key in ("t2i/recall@1", "i2t/recall@1", "t2i/own_culture_excess@1", "i2t/language_tv@1"):
        print(f"  {key:28s} {before.metrics[key]:7.3f} -> {after.metrics[key]:7.3f}")

    # 6. Save the fitted pipeline; load it over a retriever of your choice (the retriever is not
    # part of the file). The reloaded pipeline ranks exactly as the original.
    pipeline_path = fair.save(args.out / "pipeline.safetensors")
    reloaded = Debiased.load(pipeline_path, retriever=ExactRetriever())
    queries, gallery = test.texts, test.images
    original = fair.search(queries, gallery, k=10)
    again = reloaded.search(queries, gallery, k=10)
    same = torch.equal(original.indices, again.indices)
    print(f"saved pipeline to {pipeline_path}; reloaded rankings identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
