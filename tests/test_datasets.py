"""Multi30K and XM3600 readers on small files laid out as the datasets publish them."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from xcm_debias import EmbeddingSet, ExactRetriever
from xcm_debias.datasets import load_multi30k, load_xm3600, read_multi30k, read_xm3600


class ItemEncoder:
    """Test encoder: row = one-hot of its item (in first-seen order) + 0.1 × a language axis."""

    def __init__(self, dim: int = 16) -> None:
        self.dim, self.axes = dim, {}
        self.text_calls = self.image_calls = 0

    def _axis(self, key: str) -> int:
        return self.axes.setdefault(key, len(self.axes))

    def encode_texts(self, texts, language, *, item=None, id=None, culture=None, extra=None):  # noqa: A002
        self.text_calls += 1
        x = torch.zeros(len(texts), self.dim)
        for row, (it, lang) in enumerate(zip(item, language, strict=True)):
            x[row, self._axis(it)] = 1.0
            x[row, self.dim - 1 - self._axis("lang:" + lang) % 4] += 0.1
        return EmbeddingSet(x, modality="text", item=item, language=language, extra=extra)

    def encode_images(self, images, *, item=None, id=None, culture=None, extra=None):  # noqa: A002
        self.image_calls += 1
        x = torch.zeros(len(images), self.dim)
        for row, it in enumerate(item):
            x[row, self._axis(it)] = 1.0
        return EmbeddingSet(x, modality="image", item=item, culture=culture, extra=extra)


CAPTIONS = {
    "en": ["A dog runs.", "Two cats sleep.", "A red bus."],
    "de": ["Ein Hund rennt.", "Zwei Katzen schlafen.", "Ein roter Bus."],
    "cs": ["Pes běží.", "Dvě kočky spí.", "Červený autobus."],
}
IMAGES = ["1000092795.jpg", "10002456.jpg", "1000268201.jpg"]


def multi30k(tmp_path, with_names: bool = True):
    root = tmp_path / "multi30k"
    root.mkdir()
    for lang, lines in CAPTIONS.items():
        text = "\n".join(lines) + "\n"
        if lang == "cs":  # the repository's raw files are gzipped
            with gzip.open(root / "val.cs.gz", "wt", encoding="utf-8") as f:
                f.write(text)
        else:
            (root / f"val.{lang}").write_text(text, encoding="utf-8")
    if with_names:
        (root / "val.images.txt").write_text("\n".join(IMAGES) + "\n")
    images = tmp_path / "flickr30k-images"
    images.mkdir()
    for name in IMAGES:
        (images / name).write_bytes(b"")
    return root, images


def test_multi30k_captions_images_and_labels(tmp_path):
    root, images = multi30k(tmp_path)
    encoder = ItemEncoder()
    data = load_multi30k(root, encoder, split="val", image_dir=images)
    texts, imgs = data.texts, data.images
    assert len(texts) == 9 and len(imgs) == 3
    assert texts.languages() == ["cs", "de", "en"]
    assert texts.where(language="cs").extra["caption"].tolist() == CAPTIONS["cs"]
    assert texts.where(language="de").item.tolist() == IMAGES  # line i describes image i
    assert imgs.item.tolist() == IMAGES
    assert imgs.extra["image_path"].tolist() == [str(images / n) for n in IMAGES]
    assert imgs.cultures() == []  # Flickr30K images have no culture label
    top1 = ExactRetriever().search(texts, imgs, 1).indices[:, 0].numpy()
    assert (imgs.item[top1] == texts.item).all()
    assert (encoder.text_calls, encoder.image_calls) == (1, 1)


def test_multi30k_without_image_names_or_with_a_subset_of_languages(tmp_path):
    root, images = multi30k(tmp_path, with_names=False)
    corpus = read_multi30k(root, "val", languages=["en", "cs"])
    assert corpus.languages() == ["cs", "en"]
    assert corpus.item[:3] == ["val:0", "val:1", "val:2"] and corpus.image_path is None
    assert corpus.captions[3:] == CAPTIONS["cs"]
    with pytest.raises(FileNotFoundError, match="val.images.txt"):
        read_multi30k(root, "val", image_dir=images)


def test_multi30k_repository_layout_raw_and_image_splits(tmp_path):
    root = tmp_path / "task1"
    (root / "raw").mkdir(parents=True)
    (root / "image_splits").mkdir()
    for lang, lines in CAPTIONS.items():
        with gzip.open(root / "raw" / f"test_2016_flickr.{lang}.gz", "wt", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    (root / "image_splits" / "test_2016_flickr.txt").write_text("\n".join(IMAGES) + "\n")
    corpus = read_multi30k(root)
    assert corpus.languages() == ["cs", "de", "en"] and corpus.image_item == IMAGES
    assert corpus.captions[:3] == CAPTIONS["cs"] and corpus.item[:3] == IMAGES


def test_multi30k_errors_name_the_file(tmp_path):
    root, images = multi30k(tmp_path)
    (root / "val.de").write_text("Ein Hund rennt.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"val.de: expected 3 lines \(as val.cs.gz\), got 1"):
        read_multi30k(root, "val")
    with pytest.raises(
        FileNotFoundError, match=r"\['fr'\] .* found languages \['cs', 'de', 'en'\]"
    ):
        read_multi30k(root, "val", languages=["en", "fr"])
    (images / IMAGES[1]).unlink()
    (root / "val.de").write_text("\n".join(CAPTIONS["de"]), encoding="utf-8")
    with pytest.raises(
        FileNotFoundError, match="image_dir: 1 of 3 files missing, first .*10002456.jpg"
    ):
        read_multi30k(root, "val", image_dir=images)


XM = [
    ("a1", "de", {"en": ["a house", "a white house"], "de": ["ein Haus"], "sw": ["nyumba"]}),
    ("b2", "sw", {"en": ["a market", "people at a market"], "de": ["ein Markt"], "sw": ["soko"]}),
    ("c3", "en", {"en": ["a bridge", "a long bridge"], "de": ["eine Brücke"], "sw": ["daraja"]}),
]


def xm3600(tmp_path):
    lines = []
    for key, locale, captions in XM:
        record = {"image/key": key, "image/locale": locale}
        record.update(
            {lang: {"caption": c, "caption/tokenized": c} for lang, c in captions.items()}
        )
        lines.append(json.dumps(record, ensure_ascii=False))
    path = tmp_path / "captions.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    images = tmp_path / "images"
    images.mkdir()
    for key, _, _ in XM:
        (images / f"{key}.jpg").write_bytes(b"")
    return path, images


def test_xm3600_items_languages_and_image_locales(tmp_path):
    captions, images = xm3600(tmp_path)
    data = load_xm3600(captions, ItemEncoder(), image_dir=images)
    texts, imgs = data.texts, data.images
    assert len(imgs) == 3 and len(texts) == 12  # 2 en + 1 de + 1 sw captions per image
    assert imgs.item.tolist() == ["a1", "b2", "c3"]
    assert imgs.culture.tolist() == ["de", "sw", "en"]  # image/locale
    assert texts.where(language="en").item.tolist() == ["a1", "a1", "b2", "b2", "c3", "c3"]
    assert texts.where(language="sw").extra["caption"].tolist() == ["nyumba", "soko", "daraja"]
    assert texts.where(item="b2").extra["image_path"].tolist() == [str(images / "b2.jpg")] * 4
    top1 = ExactRetriever().search(texts, imgs, 1).indices[:, 0].numpy()
    assert (imgs.item[top1] == texts.item).all()


def test_xm3600_language_filter_texts_only_and_errors(tmp_path):
    captions, images = xm3600(tmp_path)
    corpus = read_xm3600(captions, languages=["sw"])
    assert corpus.captions == ["nyumba", "soko", "daraja"] and corpus.image_path is None
    assert corpus.image_culture == ["de", "sw", "en"]
    first = read_xm3600(captions, languages=["en"], captions_per_language=1)
    assert first.captions == ["a house", "a market", "a bridge"]
    texts_only = load_xm3600(captions, ItemEncoder(), languages=["de", "sw"])
    assert np.unique(texts_only.modality).tolist() == ["text"] and len(texts_only) == 6
    with pytest.raises(ValueError, match=r"languages: expected captions in \['fr'\]"):
        read_xm3600(captions, languages=["fr"])
    (images / "c3.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="1 of 3 files missing, first .*c3.jpg"):
        read_xm3600(captions, image_dir=images)
    for key, _, _ in XM:
        (tmp_path / "x").mkdir(exist_ok=True)
        (tmp_path / "x" / f"{key}.jpg").write_bytes(b"")
    with pytest.raises(TypeError, match="image_encoder: expected an encoder with encode_images"):
        load_xm3600(captions, ItemEncoder(), image_encoder=object(), image_dir=tmp_path / "x")
