"""``xcm-debias encode IMAGES CAPTIONS``: an image folder and a captions table -> a saved
EmbeddingSet, with any open_clip model."""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
import warnings
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from xcm_debias.cli import CLIError
from xcm_debias.cli._encode_inputs import find_images, read_captions

if TYPE_CHECKING:  # open_clip is slow to import: the encoder module loads only when encoding
    from xcm_debias.encoders.open_clip_encoder import OpenCLIPEncoder


EPILOG = """\
inputs:
  IMAGES     a folder of images (.png .jpg .jpeg .webp .bmp .gif .tif .tiff; subfolders too)
  CAPTIONS   a table (.csv, .tsv or .parquet), one row per caption, with the columns
               item       the item the caption describes (captions and images of one item
                          are relevant to each other)
               language   the caption's language (BCP-47 code: en, de, sw, zh-tw...);
                          optional: where the column or a cell is missing, the language
                          is identified from the caption's text (pip install
                          'xcm_debias[langid]'), among --candidate-languages if given
               caption    the text
               culture    optional: the culture of the item's image(s)
               image      optional: the image file of the row (relative to IMAGES); without
                          it, every image in IMAGES is encoded and its item is its file stem
                          (images/red-circle-3.png -> item red-circle-3)
             (rename the columns with --item-column etc.)

model:
  --model NAME --pretrained TAG        an open_clip architecture and weight tag (downloaded
                                       once, then cached; HF_HUB_OFFLINE=1 uses the cache)
  --model NAME --pretrained FILE       the same architecture with a local checkpoint
  --model hf-hub:org/repo | local-dir:/path
  --model-config my_clip.json          register an open_clip model config (JSON) first;
                                       its file stem is the model name unless --model is given
  --random-weights                     no weights at all (random init, seeded): plumbing only

examples:
  xcm-debias encode images/ captions.csv --model xlm-roberta-base-ViT-B-32 \\
      --pretrained laion5b_s13b_b90k --out corpus.npz
  xcm-debias encode images/ captions.tsv --model ViT-B-32 \\
      --pretrained ~/weights/open_clip_pytorch_model.bin --batch-size 128 --out corpus.parquet
  xcm-debias encode toy/images toy/captions.csv --model-config toy/tiny_clip.json \\
      --random-weights --out toy/corpus.npz
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "encode",
        help="encode an image folder and a captions table with an open_clip model",
        description=textwrap.fill(
            "Encode the images of IMAGES and the captions of CAPTIONS with an open_clip model "
            "(OpenCLIPEncoder: L2-normalised rows, batched, half precision on CUDA) into one "
            "saved EmbeddingSet: image rows labelled with their item (and culture), caption "
            "rows with their item and language. The output is what `xcm-debias fit` and "
            "`xcm-debias report` read.",
            78,
            break_on_hyphens=False,
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("images", metavar="IMAGES", help="folder of images (see below)")
    parser.add_argument(
        "captions", metavar="CAPTIONS", help="captions table: .csv, .tsv or .parquet (see below)"
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        default="corpus.npz",
        help="output EmbeddingSet (.npz or .parquet; default ./corpus.npz)",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        metavar="NAME",
        default=None,
        help="open_clip architecture (open_clip.list_models()), hf-hub:org/repo or "
        "local-dir:/path (default: the stem of --model-config)",
    )
    model.add_argument(
        "--pretrained",
        metavar="TAG_OR_FILE",
        default=None,
        help="weight tag of the architecture (open_clip.list_pretrained()) or a local "
        "checkpoint file (.bin/.pt/.pth/.safetensors)",
    )
    model.add_argument(
        "--model-config",
        metavar="JSON",
        default=None,
        help="an open_clip model config file (or a folder of them) to register first",
    )
    model.add_argument(
        "--random-weights",
        action="store_true",
        help="encode with randomly initialised weights (seeded by --seed): tests and "
        "plumbing only, the embeddings mean nothing",
    )
    model.add_argument("--seed", type=int, default=0, help="seed of --random-weights (default 0)")
    model.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:1... (default: cuda when available, else cpu)",
    )
    model.add_argument(
        "--precision",
        choices=("fp32", "fp16", "bf16"),
        default=None,
        help="compute precision (default: fp16 on CUDA, fp32 on CPU); outputs are float32",
    )
    model.add_argument(
        "--batch-size", type=int, default=64, help="images or texts per forward pass (default 64)"
    )
    model.add_argument(
        "--num-workers",
        type=int,
        default=0,
        help="threads that load and preprocess images (default 0: the main thread)",
    )
    model.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help="download cache for weights (default: the Hugging Face cache)",
    )
    columns = parser.add_argument_group("captions table columns")
    for name, default, what in (
        ("item", "item", "item of each caption"),
        ("language", "language", "language of each caption (optional)"),
        ("caption", "caption", "caption text"),
        ("culture", "culture", "optional culture of the item's images"),
        ("image", "image", "optional image file of each row (relative to IMAGES)"),
    ):
        columns.add_argument(
            f"--{name}-column",
            metavar="NAME",
            default=default,
            help=f"column with the {what} (default {default!r})",
        )
    columns.add_argument(
        "--candidate-languages",
        metavar="CODES",
        default=None,
        help="comma-separated languages the captions can be in (e.g. en,de,fr,cs): "
        "captions without a language are identified among these only (more accurate)",
    )
    columns.add_argument(
        "--culture-from-folder",
        action="store_true",
        help="the culture of an image is the name of its folder (IMAGES/<culture>/<item>.png), "
        "not the culture column",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def load_encoder(args: argparse.Namespace) -> OpenCLIPEncoder:
    import open_clip
    import torch

    from xcm_debias.encoders.open_clip_encoder import OpenCLIPEncoder, WeightsUnavailableError

    name = args.model
    if args.model_config is not None:
        config = Path(args.model_config)
        if not config.exists():
            raise CLIError(f"--model-config: no such file or folder: {str(config)!r}")
        if config.is_file() and config.suffix != ".json":
            raise CLIError(
                f"--model-config: expected a .json file or a folder, got {str(config)!r}"
            )
        open_clip.add_model_config(config)
        if name is None and config.is_file():
            name = config.stem
    if name is None:
        raise CLIError("--model: expected an open_clip model name (or a --model-config file)")
    hub = name.startswith(("hf-hub:", "local-dir:"))
    if args.random_weights and (args.pretrained is not None or hub):
        raise CLIError("--random-weights: expected no --pretrained and no hf-hub:/local-dir: name")
    if args.pretrained is None and not hub and not args.random_weights:
        raise CLIError(
            f"--pretrained: expected a weight tag of {name!r} "
            f"({', '.join(open_clip.list_pretrained_tags_by_model(name)) or 'it has none'}) or a "
            "checkpoint file; --random-weights encodes with random weights (plumbing only)"
        )
    if args.batch_size < 1:
        raise CLIError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    if args.num_workers < 0:
        raise CLIError(f"--num-workers: expected an integer >= 0, got {args.num_workers}")
    torch.manual_seed(args.seed)
    # random weights are asked for: our note below replaces the encoder's warning and
    # open_clip's "No pretrained weights loaded" log line
    quiet_random = _RandomWeightsNotice() if args.random_weights else nullcontext()
    try:
        with warnings.catch_warnings(), quiet_random:
            warnings.filterwarnings("ignore", message=".*randomly initialised.*")
            encoder = OpenCLIPEncoder(
                name,
                pretrained=args.pretrained,
                device=args.device,
                batch_size=args.batch_size,
                precision=args.precision,
                progress=not args.quiet,
                num_workers=args.num_workers,
                cache_dir=args.cache_dir,
            )
    except ImportError as exc:  # names the missing extra: a checkpoint path would not help
        raise CLIError(" ".join(str(exc).split())) from None
    except WeightsUnavailableError as exc:
        raise CLIError(
            " ".join(str(exc).split()) + " On the command line: --pretrained /path/to/checkpoint"
        ) from None
    if args.random_weights:
        print(
            f"xcm-debias encode: {name} with random weights (seed {args.seed}): plumbing only",
            file=sys.stderr,
        )
    return encoder


class _RandomWeightsNotice(logging.Filter):
    """Drops open_clip's root-logger line about random initialisation while installed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()

    def __enter__(self) -> _RandomWeightsNotice:
        logging.getLogger().addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeFilter(self)


def fill_languages(texts: list[str], given: list[str], candidates: str | None) -> list[str]:
    """``given``, with the empty entries identified from the texts (a note on stderr says how
    many and which languages were found)."""
    missing = [i for i, language in enumerate(given) if not language]
    if not missing:
        return given
    from xcm_debias.encoders._rows import languages_of

    wanted = None if candidates is None else [c.strip() for c in candidates.split(",") if c.strip()]
    try:
        filled = languages_of(texts, given, wanted).tolist()
    except ImportError as exc:
        raise CLIError(f"CAPTIONS: {len(missing)} caption(s) without a language: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CLIError(f"--candidate-languages: {exc}") from None
    counts = Counter(filled[i] for i in missing)
    print(
        f"xcm-debias encode: identified the language of {len(missing)} caption(s) from their "
        f"text: {', '.join(f'{lang} {n}' for lang, n in sorted(counts.items()))}",
        file=sys.stderr,
    )
    return filled


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from xcm_debias.data import EmbeddingSet

    out = Path(args.out)
    if out.suffix not in (".npz", ".parquet"):
        raise CLIError(f"--out: expected a .npz or .parquet file, got {args.out!r}")
    captions = read_captions(args)
    languages = fill_languages(captions.text, captions.language, args.candidate_languages)
    folder = Path(args.images)
    relative, items, cultures = find_images(folder, captions, args.culture_from_folder)
    encoder = load_encoder(args)
    images = encoder.encode_images(
        [folder / r for r in relative],
        item=items,
        id=[f"image:{r}" for r in relative],
        culture=cultures,
        extra={"image": np.asarray(relative, dtype=np.str_)},
    )
    texts = encoder.encode_texts(
        captions.text,
        languages,
        item=captions.item,
        id=[f"text:{i}" for i in range(len(captions.text))],
        extra={"image": np.asarray(captions.image or [""] * len(captions.text), dtype=np.str_)},
    )
    corpus = EmbeddingSet.concat([images, texts])
    corpus.save(out)
    print(
        f"encoded {len(images)} images and {len(texts)} captions "
        f"({len(corpus.languages())} languages, {len(set(items))} items, dim {corpus.dim}) "
        f"with {encoder.model_name}; wrote {out}"
    )
    return 0
