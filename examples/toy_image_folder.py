"""A toy image folder, a captions table and a tiny open_clip config: the inputs of the CLI
workflow (``xcm-debias encode → fit → report → transform``, docs/getting_started.md §4).

Writes, under ``--out``:

* ``images/<item>.png`` — one 48-px drawing per item: a coloured shape on a background whose
  style stands for a culture (``de``, ``fr``, ``en``);
* ``captions.csv`` — one row per caption: ``item``, ``language`` (``en``, ``de``, ``fr``),
  ``caption``, and the ``culture`` of the item's image — the table ``xcm-debias encode``
  reads (an image's item is its file stem);
* ``tiny_clip.json`` — an open_clip model config (a 32-d CLIP: 2-layer ViT on 32-px images,
  2-layer text transformer) that ``xcm-debias encode --model-config tiny_clip.json
  --random-weights`` registers, so the whole workflow runs offline. With random weights the
  numbers mean nothing; with a real model (``--model xlm-roberta-base-ViT-B-32 --pretrained
  laion5b_s13b_b90k``) the same commands measure and debias it.

Run::

    python examples/toy_image_folder.py --out toy
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from PIL import Image, ImageDraw

TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 60, 220)}
SHAPES = ("circle", "square", "triangle")
BACKGROUNDS = {"de": (245, 245, 245), "fr": (30, 30, 30), "en": (210, 200, 120)}
WORDS = {
    "en": ({"red": "red", "green": "green", "blue": "blue"}, SHAPES, "a {c} {s}"),
    "de": (
        {"red": "rot", "green": "grün", "blue": "blau"},
        ("Kreis", "Quadrat", "Dreieck"),
        "ein {s}, {c}",
    ),
    "fr": (
        {"red": "rouge", "green": "vert", "blue": "bleu"},
        ("cercle", "carré", "triangle"),
        "un {s} {c}",
    ),
}


def draw(colour: str, shape: str, culture: str) -> Image.Image:
    image = Image.new("RGB", (48, 48), BACKGROUNDS[culture])
    pen = ImageDraw.Draw(image)
    box = (12, 12, 36, 36)
    if shape == "circle":
        pen.ellipse(box, fill=COLOURS[colour])
    elif shape == "square":
        pen.rectangle(box, fill=COLOURS[colour])
    else:
        pen.polygon([(24, 10), (38, 38), (10, 38)], fill=COLOURS[colour])
    return image


def write_toy_folder(out: Path) -> tuple[int, int]:
    """Write the images, the captions table and the model config; returns (images, captions)."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for colour in COLOURS:
        for s, shape in enumerate(SHAPES):
            for culture in BACKGROUNDS:
                item = f"{colour}-{shape}-{culture}"
                draw(colour, shape, culture).save(out / "images" / f"{item}.png")
                for language, (colours, shapes, template) in WORDS.items():
                    text = template.format(c=colours[colour], s=shapes[s])
                    rows.append(
                        {"item": item, "language": language, "caption": text, "culture": culture}
                    )
    with (out / "captions.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["item", "language", "caption", "culture"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "tiny_clip.json").write_text(json.dumps(TINY_CONFIG, indent=2), encoding="utf-8")
    return len(COLOURS) * len(SHAPES) * len(BACKGROUNDS), len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("toy"), help="output folder")
    args = parser.parse_args(argv)
    n_images, n_captions = write_toy_folder(args.out)
    print(
        f"wrote {n_images} images to {args.out / 'images'}, {n_captions} captions to "
        f"{args.out / 'captions.csv'} and {args.out / 'tiny_clip.json'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
