"""``xcm-debias encode`` end to end on a tiny open_clip model built offline (random weights):
the saved corpus equals OpenCLIPEncoder's rows with the same checkpoint, labels follow the
captions table, runs are deterministic, and the corpus goes through fit and report."""

from __future__ import annotations

import csv
import json
import sys

import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from xcm_debias import EmbeddingSet
from xcm_debias.cli import main

TINY = "xcm-tiny-clip-cli"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 60, 220)}
CULTURES = ("de", "fr")
WORDS = {
    "en": {"red": "a red square", "green": "a green square", "blue": "a blue square"},
    "de": {"red": "ein rotes Quadrat", "green": "ein grünes Quadrat", "blue": "ein blaues Quadrat"},
}


def write_folder(root) -> tuple:
    """6 PNG images (colour × culture background) named by item, and a captions CSV."""
    images = root / "images"
    images.mkdir(parents=True)
    rows = []
    for colour, fill in COLOURS.items():
        for culture in CULTURES:
            item = f"{colour}-{culture}"
            image = Image.new("RGB", (40, 40), (240, 240, 240) if culture == "de" else (20, 20, 20))
            ImageDraw.Draw(image).rectangle((10, 10, 30, 30), fill=fill)
            image.save(images / f"{item}.png")
            for language, words in WORDS.items():
                rows.append([item, language, words[colour], culture])
    captions = root / "captions.csv"
    with captions.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["item", "language", "caption", "culture"])
        writer.writerows(rows)
    return images, captions, rows


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("encode")
    images, captions, rows = write_folder(root)
    config = root / f"{TINY}.json"
    config.write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
    return root, images, captions, rows, config


@pytest.fixture(scope="module")
def checkpoint(folder):
    import open_clip

    root, *_, config = folder
    open_clip.add_model_config(config)
    torch.manual_seed(1)
    model = open_clip.create_model(TINY)
    path = root / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def encode(folder, out, *extra: str) -> int:
    root, images, captions, _, config = folder
    argv = ["encode", str(images), str(captions), "--model-config", str(config)]
    return main([*argv, "--out", str(out), "--quiet", *extra])


def test_encoded_corpus_equals_the_encoder_with_the_same_checkpoint(folder, checkpoint, tmp_path):
    from xcm_debias.encoders import OpenCLIPEncoder

    out = tmp_path / "corpus.npz"
    assert encode(folder, out, "--pretrained", str(checkpoint), "--batch-size", "4") == 0
    corpus = EmbeddingSet.load(out)
    root, images, _, rows, _ = folder
    files = sorted(images.glob("*.png"))

    encoder = OpenCLIPEncoder(TINY, pretrained=checkpoint, device="cpu", progress=False)
    expected_images = encoder.embed_images(files)
    expected_texts = encoder.embed_texts([r[2] for r in rows], [r[1] for r in rows])
    pictures, texts = corpus.images, corpus.texts
    torch.testing.assert_close(pictures.embeddings, expected_images, atol=1e-5, rtol=0)
    torch.testing.assert_close(texts.embeddings, expected_texts, atol=1e-5, rtol=0)

    assert pictures.item.tolist() == [f.stem for f in files]
    assert pictures.culture.tolist() == [f.stem.split("-")[1] for f in files]
    assert pictures.extra["image"].tolist() == [f.name for f in files]
    assert texts.item.tolist() == [r[0] for r in rows]
    assert texts.language.tolist() == [r[1] for r in rows]
    assert texts.extra["caption"].tolist() == [r[2] for r in rows]
    assert corpus.dim == TINY_CONFIG["embed_dim"]


def test_random_weights_are_seeded_and_batch_size_does_not_change_rows(
    folder, tmp_path, capsys, caplog
):
    a, b, c = (tmp_path / f"{n}.parquet" for n in "abc")
    assert encode(folder, a, "--random-weights", "--seed", "3", "--batch-size", "5") == 0
    err = capsys.readouterr().err
    assert err == f"xcm-debias encode: {TINY} with random weights (seed 3): plumbing only\n"
    assert "No pretrained weights loaded" not in caplog.text  # open_clip's log line, replaced
    assert encode(folder, b, "--random-weights", "--seed", "3", "--batch-size", "64") == 0
    assert encode(folder, c, "--random-weights", "--seed", "4") == 0
    first, second, other = (EmbeddingSet.load(p).embeddings for p in (a, b, c))
    torch.testing.assert_close(first, second, atol=1e-5, rtol=0)
    assert not torch.allclose(first, other, atol=1e-3)


def test_image_column_maps_files_to_items_and_cultures(folder, checkpoint, tmp_path):
    root, images, _, rows, config = folder
    table = tmp_path / "captions.tsv"
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["id", "lang", "text", "picture", "culture"])
        for item, language, text, culture in rows:
            writer.writerow([f"x-{item}", language, text, f"{item}.png", culture])
    out = tmp_path / "corpus.npz"
    argv = ["encode", str(images), str(table), "--model-config", str(config), "--quiet"]
    argv += ["--pretrained", str(checkpoint), "--out", str(out), "--item-column", "id"]
    argv += ["--language-column", "lang", "--caption-column", "text", "--image-column", "picture"]
    assert main(argv) == 0
    corpus = EmbeddingSet.load(out)
    assert corpus.images.item.tolist() == sorted(f"x-{r[0]}" for r in rows[::2])
    assert set(corpus.images.item.tolist()) == set(corpus.texts.item.tolist())
    assert corpus.texts.extra["image"].tolist() == [f"{r[0]}.png" for r in rows]


def test_culture_from_folder(tmp_path, folder, checkpoint):
    *_, config = folder
    images = tmp_path / "images"
    for culture in ("jp", "kenya"):
        (images / culture).mkdir(parents=True)
        Image.new("RGB", (32, 32), (9, 9, 9)).save(images / culture / "cat.png")
    table = tmp_path / "captions.csv"
    table.write_text("item,language,caption\ncat,en,a cat\ncat,sw,paka\n", encoding="utf-8")
    out = tmp_path / "corpus.npz"
    argv = ["encode", str(images), str(table), "--model-config", str(config), "--quiet"]
    assert (
        main([*argv, "--pretrained", str(checkpoint), "--out", str(out), "--culture-from-folder"])
        == 0
    )
    corpus = EmbeddingSet.load(out)
    assert corpus.images.culture.tolist() == ["jp", "kenya"]
    assert corpus.images.item.tolist() == ["cat", "cat"]


def test_encode_fit_report_through_the_cli(folder, tmp_path, capsys):
    corpus = tmp_path / "corpus.npz"
    assert encode(folder, corpus, "--random-weights") == 0
    pipeline, test = tmp_path / "p.safetensors", tmp_path / "test.npz"
    spec = "LanguageProjection(method=center); t2i: GroupBalance(temperature=0.02)"
    fit = ["fit", str(corpus), spec, "--out", str(pipeline)]
    assert main([*fit, "--test-size", "0.5", "--test-out", str(test)]) == 0
    report = ["report", str(test), "--pipeline", str(pipeline), "--k", "2"]
    assert main([*report, "--out", str(tmp_path / "report"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "report" / "report.json").read_text())["metrics"]
    assert 0.0 <= metrics["t2i/recall@1"] <= 1.0
    assert set(EmbeddingSet.load(test).texts.languages()) == {"de", "en"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--pretrained: expected a weight tag of 'xcm-tiny-clip-cli'"),
        (
            ["--random-weights", "--pretrained", "x.pt"],
            "--random-weights: expected no --pretrained",
        ),
        (["--pretrained", "/nowhere/w.safetensors"], "which does not exist"),
        (["--random-weights", "--item-column", "id"], "expected the columns 'id' (item)"),
        (["--random-weights", "--batch-size", "0"], "--batch-size: expected a positive integer"),
        (["--random-weights", "--out-format"], None),
    ],
)
def test_bad_arguments_are_one_line_errors(folder, tmp_path, capsys, extra, message):
    if message is None:  # an unknown option: argparse's usage error, exit code 2
        with pytest.raises(SystemExit) as info:
            encode(folder, tmp_path / "c.npz", *extra)
        assert info.value.code == 2
        return
    assert encode(folder, tmp_path / "c.npz", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("xcm-debias encode: error: ") and message in err, err
    assert err.count("\n") == 1


def test_captions_without_images_and_bad_tables_are_named(folder, tmp_path, capsys):
    root, images, _, _, config = folder
    orphan = tmp_path / "orphan.csv"
    orphan.write_text("item,language,caption\nred-de,en,x\nnowhere,en,y\n", encoding="utf-8")
    blank = tmp_path / "blank.csv"
    blank.write_text("item,language,caption\nred-de,en,\n", encoding="utf-8")
    for table, message in (
        (orphan, "1 item(s) have captions but no image (first: 'nowhere')"),
        (blank, "column 'caption' (caption) on every row, got 1 empty (first: data row 1)"),
        (tmp_path / "captions.xlsx", "CAPTIONS: no such file"),
    ):
        argv = ["encode", str(images), str(table), "--model-config", str(config)]
        assert main([*argv, "--random-weights", "--out", str(tmp_path / "c.npz")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "c.npz").exists()


# ------------------------------------------------------ languages from the text
def _without_languages(folder, tmp_path, blank_cells: bool):
    """The folder's captions table with no language column, or with empty language cells."""
    root, images, _, rows, config = folder
    table = tmp_path / "captions.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["item", "language", "caption"] if blank_cells else ["item", "caption"])
        for item, _, text, _ in rows:
            writer.writerow([item, "", text] if blank_cells else [item, text])
    return ["encode", str(images), str(table), "--model-config", str(config), "--random-weights"]


@pytest.mark.parametrize("blank_cells", [False, True])
def test_captions_without_languages_are_identified_from_their_text(
    folder, tmp_path, capsys, blank_cells
):
    from xcm_debias.langid import identify_languages

    rows = folder[3]
    argv = _without_languages(folder, tmp_path, blank_cells)
    out = tmp_path / "corpus.npz"
    assert main([*argv, "--candidate-languages", "en, de", "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "identified the language of 12 caption(s) from their text: de 6, en 6" in err
    assert EmbeddingSet.load(out).texts.language.tolist() == [r[1] for r in rows]
    # open identification: what identify_languages says (three-word captions are hard there)
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    expected = identify_languages([r[2] for r in rows])
    assert EmbeddingSet.load(out).texts.language.tolist() == expected


def test_identification_errors_are_named_before_encoding(folder, tmp_path, capsys, monkeypatch):
    argv = _without_languages(folder, tmp_path, blank_cells=False)
    out = tmp_path / "corpus.npz"
    assert main([*argv, "--candidate-languages", "en,tlh", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--candidate-languages: candidates: expected languages the identifier knows" in err
    _clear_caches()
    monkeypatch.setitem(sys.modules, "py3langid", None)
    monkeypatch.setitem(sys.modules, "py3langid.langid", None)
    try:
        assert main([*argv, "--out", str(out)]) == 2
    finally:
        _clear_caches()
    err = capsys.readouterr().err
    assert "CAPTIONS: 12 caption(s) without a language: language identification needs" in err
    assert "pip install 'xcm_debias[langid]'" in err and err.count("\n") == 1
    assert not out.exists()


def _clear_caches() -> None:
    """Forget the loaded identifier, so that the next call imports py3langid again."""
    from xcm_debias import langid

    langid._model.cache_clear()
    langid._identifier.cache_clear()
