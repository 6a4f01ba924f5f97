"""``xcm-debias world``: train the embedded world's image tower, or describe the world."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

from xcm_debias.cli import CLIError

EPILOG = """\
examples:
  xcm-debias world train --out my_tower/            # about 1-4 min on 2 CPU cores
  xcm-debias world train --seed 1 --native-rate 0.3 --out tower_nr03/
  xcm-debias world info                            # shipped tower, sizes, cache
  xcm-debias world info --baseline --seed 0        # the bias effects of exact retrieval
  xcm-debias world info --weights my_tower/ --baseline --n-items 120
  xcm-debias world figures --out docs/img --seeds 0 1 2
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "world",
        help="the embedded benchmark: train its image tower, describe it",
        description=textwrap.fill(
            "The embedded world: drawn scenes on culture-styled backgrounds, captions in nine "
            "languages embedded by USE-m3, and a small image tower trained LiT-style on "
            "web-like data. `train` retrains the tower (seeded); `info` describes the tower "
            "and the corpus, and with --baseline measures its bias effects.",
            78,
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="world_command", metavar="ACTION")
    sub.required = True

    train = sub.add_parser("train", help="train the image tower and save it")
    train.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    train.add_argument(
        "--out",
        metavar="DIR",
        default="world_tower",
        help="folder for tower.safetensors, tower.json and reference.json (default "
        "./world_tower; the shipped weights live in xcm_debias/worlds/weights)",
    )
    train.add_argument("--n-images", type=int, help="training images (default 12000)")
    train.add_argument("--epochs", type=int, help="training epochs (default 10)")
    train.add_argument(
        "--native-rate",
        type=float,
        help="probability that a caption is in its image's culture language (default 0.5)",
    )
    train.add_argument(
        "--explicit-rate",
        type=float,
        help="share of captions that name their image's culture in words (default 0.5)",
    )
    train.add_argument(
        "--threads", type=int, help="torch threads (default 2: the budget is 2 CPU cores)"
    )
    train.add_argument("--quiet", action="store_true", help="no progress bars")

    info = sub.add_parser("info", help="describe the tower and the world corpus")
    info.add_argument("--weights", metavar="PATH", help="tower folder or file (default: shipped)")
    info.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    info.add_argument("--n-items", type=int, help="items in both splits (default 300)")
    info.add_argument(
        "--baseline",
        action="store_true",
        help="build (or load from cache) the test split and print the bias effects of exact "
        "retrieval",
    )

    figures = sub.add_parser(
        "figures", help="write the figures and baseline table of docs/world.md"
    )
    figures.add_argument("--out", metavar="DIR", default="docs/img", help="default docs/img")
    figures.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="world seeds (default 0 1 2)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    if args.world_command == "train":
        return _train(args)
    if args.world_command == "figures":
        from xcm_debias.worlds.figures import write_figures

        for path in write_figures(args.out, args.seeds):
            print(f"wrote {path}")
        return 0
    return _info(args)


def _train(args: argparse.Namespace) -> int:
    from xcm_debias.worlds.reference import write_reference
    from xcm_debias.worlds.train import TrainConfig, save_tower, train_tower

    overrides = {
        "seed": args.seed,
        "n_images": args.n_images,
        "epochs": args.epochs,
        "native_rate": args.native_rate,
        "explicit_rate": args.explicit_rate,
        "threads": args.threads,
    }
    config = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    tower, log = train_tower(config, progress=not args.quiet)
    out = Path(args.out)
    save_tower(tower, config, out, log)
    write_reference(tower, out)
    seconds = log["seconds"]
    print(
        f"trained in {seconds['total']:.0f} s (draw {seconds['draw']:.0f} s, captions "
        f"{seconds['encode_captions']:.0f} s, training {seconds['train']:.0f} s); "
        f"final loss {log['final_loss']:.3f}, temperature {log['temperature']:.4f}"
    )
    print(f"wrote {out / 'tower.safetensors'}, {out / 'tower.json'}, {out / 'reference.json'}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from xcm_debias.worlds import CULTURES, HELD_BACK_PAIRS, HIGH_RESOURCE, LOW_RESOURCE
    from xcm_debias.worlds.build import (
        DEFAULT_CALIBRATION_FRACTION,
        DEFAULT_N_ITEMS,
        world_items,
    )
    from xcm_debias.worlds.cache import cache_dir
    from xcm_debias.worlds.load import WEIGHTS_DIR, tower_config, weights_digest

    weights = args.weights
    try:
        meta = tower_config(weights)
        digest = weights_digest(weights)
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from exc
    config, training = meta["config"], meta.get("training", {})
    n_items = DEFAULT_N_ITEMS if args.n_items is None else args.n_items
    _, splits = world_items(args.seed, n_items, DEFAULT_CALIBRATION_FRACTION)
    n_test = splits.count("test")
    print(f"tower: {weights or WEIGHTS_DIR} (sha256 {digest})")
    print("  training config: " + json.dumps(config))
    if training:
        print(
            f"  trained: final loss {training['final_loss']:.3f}, temperature "
            f"{training['temperature']:.4f}, {training['seconds']['total']} s"
        )
    print(
        f"languages: high-resource {', '.join(HIGH_RESOURCE)}; low-resource {', '.join(LOW_RESOURCE)}"
    )
    print("cultures: " + ", ".join(f"{c.name} ({c.texture})" for c in CULTURES.values()))
    print(f"held-back pairs (apart only in test): {HELD_BACK_PAIRS}")
    print(
        f"world seed {args.seed}: {n_items} items, {splits.count('calibration')} calibration, "
        f"{n_test} test ({n_test} queries per language, {n_test} images per culture)"
    )
    print(f"cache: {cache_dir()}")
    if args.baseline:
        _baseline(args, weights)
    return 0


def _baseline(args: argparse.Namespace, weights: str | None) -> None:
    from xcm_debias.report import BiasReport
    from xcm_debias.retrieval import ExactRetriever
    from xcm_debias.worlds import CULTURE_OF_LANGUAGE, LANGUAGES
    from xcm_debias.worlds.load import load_scenes

    test = load_scenes("test", seed=args.seed, n_items=args.n_items, weights=weights)
    m = BiasReport.evaluate(ExactRetriever(), test, culture_of_language=CULTURE_OF_LANGUAGE).metrics
    print(
        f"baseline: ExactRetriever on the test split ({len(test.texts)} captions, "
        f"{len(test.images)} images)"
    )
    print(
        "lang  t2i recall@1  own-culture@1 (chance)  own-culture@1 of misses  "
        "named-culture@1  i2t share@1"
    )
    for lang in LANGUAGES:
        own = m.get(f"t2i/own_culture@1/lang={lang}")
        chance = m.get(f"t2i/own_culture_chance/lang={lang}")
        misses = m.get(f"t2i/own_culture_misses@1/lang={lang}")
        named = m.get(f"t2i/named_culture@1/lang={lang}")
        own_text = "-" if own is None else f"{own:.3f} ({chance:.3f})"
        miss_text = "-" if misses is None else f"{misses:.3f}"
        named_text = "-" if named is None else f"{named:.3f}"
        print(
            f"{lang:<5} {m[f't2i/recall@1/lang={lang}']:>12.3f}  {own_text:>22}  "
            f"{miss_text:>23}  {named_text:>15}  {m[f'i2t/language_share@1/lang={lang}']:>11.3f}"
        )
    print(
        "own-culture@1: captions that name no culture (implicit); named-culture@1: captions "
        "that name one (chance 0.125)"
    )
    en_share = m["i2t/language_share@1/lang=en"]
    gallery = m["i2t/gallery_language_share/lang=en"]
    print(
        f"English share of image→text top-1: {en_share:.3f} = {en_share / gallery:.2f}× its "
        f"gallery share {gallery:.3f}; language TV@1 {m['i2t/language_tv@1']:.3f}; "
        f"ODmAP-style@10 t2i {m['t2i/odmap@10']:.3f} (all queries: mAP@10 {m['t2i/map@10']:.3f})"
    )
