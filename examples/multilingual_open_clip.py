"""Encode images and multilingual captions with open_clip, then debias and report.

The real run uses a multilingual open_clip model (XLM-RoBERTa text tower, LAION-5B weights):

    OpenCLIPEncoder("xlm-roberta-base-ViT-B-32", pretrained="laion5b_s13b_b90k")

Its weights are downloaded from the Hugging Face Hub on first use (and it needs
``pip install transformers sentencepiece`` for the XLM-R tokenizer). Offline, or without those
packages, this script says what to download and how to point the encoder at a local file, and
exits 0.

``--tiny`` runs the whole path for real without any download: a tiny open_clip CLIP
(random weights, 32-d) registered in-script with ``open_clip.add_model_config``, encoding drawn
scenes of the embedded world and their captions in five languages → ``split_items`` →
``Debiased`` → ``BiasReport``. Its numbers are those of a random model; it shows the plumbing.

Run::

    python examples/multilingual_open_clip.py --out clip_out            # real model if present
    python examples/multilingual_open_clip.py --out clip_out --tiny     # offline plumbing
    python examples/multilingual_open_clip.py --pretrained /models/open_clip_pytorch_model.bin
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image

from xcm_debias import BiasReport, Debiased, EmbeddingSet, ExactRetriever
from xcm_debias.encoders import OpenCLIPEncoder
from xcm_debias.encoders.open_clip_encoder import WeightsUnavailableError
from xcm_debias.processors import LanguageProjection
from xcm_debias.scoring import DualInvertedSoftmax
from xcm_debias.worlds import caption, draw_scene, sample_items

MODEL = "xlm-roberta-base-ViT-B-32"
PRETRAINED = "laion5b_s13b_b90k"
TINY = "xcm-tiny-clip-example"
TINY_CONFIG = {  # a 32-d CLIP: 2-layer ViT on 32-px images, 2-layer text transformer
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
CULTURES = ("de", "fr", "ja", "sw")
LANGUAGES = ("en", "de", "fr", "ja", "sw")


def scenes_and_captions(n_items: int, seed: int) -> tuple[list, list]:
    """Image inputs (PIL, one per item × culture) and captions (one per item × language)."""
    scenes = sample_items(n_items, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    images = [
        (Image.fromarray(draw_scene(s, c, size=64, rng=rng)), s.item_id, c)
        for s in scenes
        for c in CULTURES
    ]
    captions = [(caption(s, lang), s.item_id, lang) for s in scenes for lang in LANGUAGES]
    return images, captions


def encode(encoder: OpenCLIPEncoder, n_items: int, seed: int) -> EmbeddingSet:
    """One EmbeddingSet with image rows (culture-labelled) and caption rows (language-labelled)."""
    images, captions = scenes_and_captions(n_items, seed)
    image_rows = encoder.encode_images(
        [im for im, _, _ in images],
        item=[item for _, item, _ in images],
        culture=[c for _, _, c in images],
    )
    caption_rows = encoder.encode_texts(
        [text for text, _, _ in captions],
        [lang for _, _, lang in captions],  # every caption's language is recorded
        item=[item for _, item, _ in captions],
    )
    return EmbeddingSet.concat([image_rows, caption_rows])


def debias_and_report(corpus: EmbeddingSet, out: Path) -> None:
    corpus.save(out / "corpus.npz")  # encode once; evaluate any debiaser on the saved vectors
    calib, test = corpus.split_items(test_size=0.5, seed=0)
    base = ExactRetriever()
    fair = Debiased(base, LanguageProjection("center"), scoring=DualInvertedSoftmax()).fit(calib)
    before, after = BiasReport.evaluate(base, test), BiasReport.evaluate(fair, test)
    before.compare(after).to_html(out / "report.html")
    for key in ("t2i/recall@1", "i2t/recall@1", "i2t/language_tv@1", "t2i/own_culture_excess@1"):
        print(f"  {key:28s} {before.metrics[key]:7.3f} -> {after.metrics[key]:7.3f}")
    print(f"wrote {out / 'corpus.npz'} and {out / 'report.html'}")


def tiny_encoder() -> OpenCLIPEncoder:
    """A tiny random-weight open_clip CLIP, registered as a user registers their own config."""
    with tempfile.TemporaryDirectory() as config_dir:  # open_clip reads the JSON at once
        (Path(config_dir) / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
        open_clip.add_model_config(config_dir)
    torch.manual_seed(0)
    with warnings.catch_warnings():  # pretrained=None warns "randomly initialised": intended here
        warnings.simplefilter("ignore", UserWarning)
        return OpenCLIPEncoder(TINY, pretrained=None, device="cpu", progress=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("multilingual_open_clip_out"))
    parser.add_argument("--tiny", action="store_true", help="tiny random-weight model, offline")
    parser.add_argument("--pretrained", default=PRETRAINED, help="weight tag or local file")
    parser.add_argument("--n-items", type=int, default=24, help="drawn items to encode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    if args.tiny:
        encoder = tiny_encoder()
    else:
        try:
            encoder = OpenCLIPEncoder(MODEL, pretrained=args.pretrained, progress=False)
        except (WeightsUnavailableError, ImportError) as exc:
            # No network and nothing in the cache, or transformers missing: say how to get there.
            print(f"{MODEL} ({args.pretrained}) is not available here:\n  {exc}\n")
            print(
                "To run the real model:\n"
                "  1. pip install transformers sentencepiece   (the XLM-R tokenizer)\n"
                f"  2. on a machine with network access run this script once: the weights of\n"
                f"     {MODEL}/{PRETRAINED} go to ~/.cache/huggingface/hub; copy that folder to\n"
                "     this machine and start Python with HF_HUB_OFFLINE=1, or\n"
                "  3. download the checkpoint file (open_clip_pytorch_model.bin) and pass\n"
                "     --pretrained /path/to/open_clip_pytorch_model.bin\n"
                "     (in code: OpenCLIPEncoder(MODEL, pretrained=PATH)).\n"
                "Offline, `--tiny` runs the same encode -> Debiased -> report path on a tiny\n"
                "random-weight model."
            )
            return 0
    print(f"encoder: {encoder}")
    corpus = encode(encoder, args.n_items, args.seed)
    print(f"encoded: {corpus}")
    debias_and_report(corpus, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
