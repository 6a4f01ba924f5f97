"""clip-retrieval folder in → debiased faiss index out.

For collections embedded with clip-retrieval (``clip-retrieval inference`` writes
``img_emb/img_emb_<n>.npy``, ``text_emb/text_emb_<n>.npy`` and ``metadata/metadata_<n>.parquet``;
row i of a shard is one image–caption pair). This script

1. writes such a folder from the embedded world (one image and one caption per row, with
   ``item`` / ``language`` / ``culture`` metadata columns) — or uses yours (``--input DIR``);
2. loads it (``EmbeddingSet.load(folder)``) and splits it by item into calibration and test;
3. fits a ``Debiased`` pipeline over a faiss HNSW index on the calibration side;
4. searches the test captions against the test images, before and after;
5. saves the fitted pipeline and the faiss index side by side, reloads both and checks that
   the reloaded pair returns the same rankings (the index is not rebuilt);
6. writes debiased embedding shards (processors only) with ``transform_folder`` — the same as
   ``xcm-debias transform PIPELINE INPUT OUTPUT`` on the command line.

Score-level stages (here the dual inverted softmax) live in the pipeline, folded into one
extra coordinate of the indexed vectors, so they are exact on any inner-product index; the
streamed shards carry the embedding-level part only.

Run::

    python examples/clip_retrieval_to_faiss.py --out faiss_out [--input my_clip_retrieval_dir]
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import numpy as np
import torch

from xcm_debias import Debiased, EmbeddingSet, FaissRetriever
from xcm_debias.processors import LanguageProjection
from xcm_debias.scoring import DualInvertedSoftmax
from xcm_debias.streaming import transform_folder
from xcm_debias.worlds import load_scenes


def write_clip_retrieval_folder(folder: Path, n_items: int, seed: int) -> Path:
    """A clip-retrieval folder from the world: per item, its 8 images each paired with a caption.

    The world has 8 images (one per culture) and 9 captions (one per language) per item; the
    layout pairs image i with caption i, so each item drops one caption, a different language
    for consecutive items, which keeps every language in the folder.
    """
    world = load_scenes("all", seed=seed, n_items=n_items)
    image_rows, text_rows = [], []
    for n, item in enumerate(np.unique(world.item)):
        images = np.flatnonzero((world.item == item) & (world.modality == "image"))
        texts = np.flatnonzero((world.item == item) & (world.modality == "text"))
        texts = np.delete(texts, n % len(texts))[: len(images)]
        image_rows.extend(images.tolist())
        text_rows.extend(texts.tolist())
    images, texts = world[np.array(image_rows)], world[np.array(text_rows)]
    pairs = EmbeddingSet.concat(
        [
            EmbeddingSet(
                images.embeddings, modality="image", item=images.item, culture=images.culture
            ),
            EmbeddingSet(
                texts.embeddings, modality="text", item=texts.item, language=texts.language
            ),
        ]
    )
    return pairs.save(folder)  # no suffix: a clip-retrieval folder


def text_to_image_top1(retriever: object, test: EmbeddingSet) -> tuple[float, float]:
    """Test captions against test images: recall@1, and the share of top-1 images whose
    culture is the caption's language (own culture; chance 1/8 on the world)."""
    queries, gallery = test.texts, test.images
    top1 = retriever.search(queries, gallery, k=1).indices[:, 0].numpy()
    recall = np.mean(gallery.item[top1] == queries.item)
    tied = np.isin(queries.language, gallery.cultures())  # languages that have a culture
    own = np.mean(gallery.culture[top1][tied] == queries.language[tied])
    return float(recall), float(own)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("clip_retrieval_to_faiss_out"))
    parser.add_argument("--input", type=Path, default=None, help="your clip-retrieval folder")
    parser.add_argument("--n-items", type=int, default=60, help="world size (full world: 300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    # 1-2. The folder in, one EmbeddingSet out (images and captions, labels from metadata).
    folder = args.input or write_clip_retrieval_folder(
        args.out / "embeddings", args.n_items, args.seed
    )
    corpus = EmbeddingSet.load(folder)
    calib, test = corpus.split_items(test_size=0.5, seed=0)
    print(f"loaded {folder}: {corpus}")

    # 3. A pipeline over an approximate (HNSW) faiss index, fitted on calibration items only.
    fair = Debiased(
        FaissRetriever("hnsw"),
        LanguageProjection("leace"),
        scoring=DualInvertedSoftmax(),
    ).fit(calib)

    # 4. Serve the test images; the first search builds (and caches) the faiss index.
    (recall_before, own_before) = text_to_image_top1(FaissRetriever("hnsw"), test)
    (recall_after, own_after) = text_to_image_top1(fair, test)
    print(f"t2i recall@1 (faiss hnsw):  plain {recall_before:.3f} -> debiased {recall_after:.3f}")
    print(f"t2i own-culture share @1:   plain {own_before:.3f} -> debiased {own_after:.3f}")

    # 5. The fitted pipeline and the index of the served gallery, side by side.
    pipeline_path = fair.save(args.out / "pipeline.safetensors")
    index_path = fair.retriever.save_index(args.out / "gallery.hnsw.faiss")
    print(f"saved {pipeline_path} and {index_path}")

    # Later, in a serving process: load both; the index serves the gallery it was built from.
    served = Debiased.load(pipeline_path, retriever=FaissRetriever("hnsw").load_index(index_path))
    same = torch.equal(
        served.search(test.texts, test.images, k=10).indices,
        fair.search(test.texts, test.images, k=10).indices,
    )
    print(f"reloaded pipeline + index: rankings identical: {same}")

    # 6. Debiased embedding shards for other tools: the processors alone, streamed shard by
    # shard in constant memory (resumable: finished shards are skipped on a rerun).
    processors_path = fair.processors.save(args.out / "processors.safetensors")
    shards_out = args.out / "debiased_embeddings"
    written = transform_folder(processors_path, folder, shards_out, progress=False)
    print(f"wrote {len(written)} debiased shard(s) to {shards_out}")
    command = ["xcm-debias", "transform", str(processors_path), str(folder), str(shards_out)]
    print(f"same from the shell: {shlex.join(command)}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
