"""clip-retrieval folders with several captions per image (one metadata row per image–caption
pair): images deduplicated by path, items derived from the path, a warning without languages."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from xcm_debias import EmbeddingSet, ExactRetriever
from xcm_debias.io import load_clip_retrieval

# (image_path, caption, language) per row, in two shards; b.jpg's captions straddle the shards
SHARDS = [
    [("a.jpg", "a dog", "en"), ("a.jpg", "ein Hund", "de"), ("b.jpg", "a cat", "en")],
    [("b.jpg", "eine Katze", "de"), ("c.jpg", "a bird", "en"), ("a.jpg", "un perro", "es")],
]
IMAGE_VECTORS = {"a.jpg": [1.0, 0.0, 0.0], "b.jpg": [0.0, 1.0, 0.0], "c.jpg": [0.0, 0.0, 1.0]}


def write_folder(folder, columns=("image_path", "caption", "language"), item=None):
    """The layout `clip-retrieval inference` writes: the image row repeats for every caption."""
    for name in ("img_emb", "text_emb", "metadata"):
        (folder / name).mkdir(parents=True)
    for s, rows in enumerate(SHARDS):
        paths = [r[0] for r in rows]
        img = np.array([IMAGE_VECTORS[p] for p in paths], dtype=np.float16)
        # each caption: its image's direction plus a small caption-specific component
        txt = img.astype(np.float32) + 0.1 * np.eye(3, dtype=np.float32)[[1, 2, 0][: len(rows)]]
        np.save(folder / "img_emb" / f"img_emb_{s}.npy", img)
        np.save(folder / "text_emb" / f"text_emb_{s}.npy", txt.astype(np.float16))
        table = {
            "image_path": paths,
            "caption": [r[1] for r in rows],
            "language": [r[2] for r in rows],
        }
        table = {k: v for k, v in table.items() if k in columns}
        if item is not None:
            table["item"] = [item(r) for r in rows]
        pq.write_table(pa.table(table), folder / "metadata" / f"metadata_{s}.parquet")
    return folder


def test_images_are_deduplicated_by_path_and_captions_share_their_image_item(tmp_path):
    data = load_clip_retrieval(write_folder(tmp_path / "f"))
    images, texts = data.images, data.texts
    assert len(images) == 3 and len(texts) == 6  # not 6 images
    assert images.extra["image_path"].tolist() == ["a.jpg", "b.jpg", "c.jpg"]
    assert images.item.tolist() == ["a.jpg", "b.jpg", "c.jpg"]
    assert texts.item.tolist() == ["a.jpg", "a.jpg", "b.jpg", "b.jpg", "c.jpg", "a.jpg"]
    assert texts.language.tolist() == ["en", "de", "en", "de", "en", "es"]
    assert images.id.tolist() == ["image-0:0", "image-0:2", "image-1:1"]  # each path's first row
    expected = torch.tensor([IMAGE_VECTORS[p] for p in ("a.jpg", "b.jpg", "c.jpg")])
    assert torch.equal(images.embeddings.float(), expected)
    # every caption's relevant image is its own one: text->image top-1 finds it
    top1 = ExactRetriever().search(texts, images, 1).indices[:, 0]
    assert images.item[top1.numpy()].tolist() == texts.item.tolist()


def test_an_item_column_wins_over_the_path(tmp_path):
    folder = write_folder(tmp_path / "f", item=lambda row: "pets" if row[0] != "c.jpg" else "bird")
    data = load_clip_retrieval(folder)
    assert data.images.item.tolist() == ["pets", "pets", "bird"]
    assert len(data.images) == 3  # still one image per path


def test_the_same_folder_through_embedding_set_load(tmp_path):
    folder = write_folder(tmp_path / "f")
    a, b = load_clip_retrieval(folder), EmbeddingSet.load(folder)
    assert torch.equal(a.embeddings, b.embeddings) and (a.item == b.item).all()


def test_without_a_language_column_a_warning_says_what_is_lost(tmp_path):
    folder = write_folder(tmp_path / "f", columns=("image_path", "caption"))
    with pytest.warns(UserWarning, match="no 'language' column .* per-language metric .* None"):
        data = load_clip_retrieval(folder)
    assert data.texts.languages() == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_clip_retrieval(write_folder(tmp_path / "g"))  # with languages: silent


def test_without_paths_or_items_each_pair_is_its_own_item(tmp_path):
    data = load_clip_retrieval(write_folder(tmp_path / "f", columns=("caption", "language")))
    assert len(data.images) == 6
    assert data.images.item.tolist() == ["0:0", "0:1", "0:2", "1:0", "1:1", "1:2"]
    assert (data.images.item == data.texts.item).all()


def test_several_captions_per_image_save_as_the_layout_and_load_back(tmp_path):
    data = load_clip_retrieval(write_folder(tmp_path / "f"))
    data.save(tmp_path / "again")
    meta = pq.read_table(tmp_path / "again" / "metadata" / "metadata_0.parquet").to_pydict()
    assert meta["image_path"] == ["a.jpg", "a.jpg", "b.jpg", "b.jpg", "c.jpg", "a.jpg"]
    again = load_clip_retrieval(tmp_path / "again")
    for a, b in ((data.images, again.images), (data.texts, again.texts)):
        assert torch.equal(a.embeddings, b.embeddings)
        for name in ("item", "language", "culture"):
            assert (a.label(name) == b.label(name)).all(), name
    # without an image_path column, the image's id stands in for it
    columns = {k: v for k, v in data.to_columns().items() if k != "extra.image_path"}
    plain = EmbeddingSet.from_columns(data.embeddings, columns)
    plain.save(tmp_path / "ids")
    ids = pq.read_table(tmp_path / "ids" / "metadata" / "metadata_0.parquet").column("image_path")
    assert ids.to_pylist()[:2] == ["image-0:0", "image-0:0"]
    assert len(load_clip_retrieval(tmp_path / "ids").images) == 3
