"""``xcm-debias transform PIPELINE INPUT OUTPUT``: stream embedding shards through a pipeline."""

from __future__ import annotations

import argparse

from xcm_debias.streaming import transform_folder


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "transform",
        help="apply a fitted pipeline to embedding shards (constant memory, resumable)",
        description=(
            "Stream every .npy shard of INPUT (a clip-retrieval folder: img_emb/, text_emb/, "
            "metadata/; or a plain folder of .npy shards with --modality) through the fitted "
            "pipeline PIPELINE (a .safetensors file written by "
            "PostProcessor.save, e.g. fair.processors.save(path)) into OUTPUT. Each shard is written atomically; rerunning after "
            "a crash skips finished shards."
        ),
    )
    parser.add_argument("pipeline", help="fitted pipeline file (.safetensors)")
    parser.add_argument("input", help="input folder of embedding shards")
    parser.add_argument("output", help="output folder (created; same layout as INPUT)")
    parser.add_argument(
        "--modality",
        choices=("image", "text"),
        default=None,
        help="modality of a plain folder of .npy shards (clip-retrieval folders name it)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=65536, help="rows per batch (default 65536)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    written = transform_folder(
        args.pipeline,
        args.input,
        args.output,
        modality=args.modality,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    print(f"{len(written)} shard(s) in {args.output}")
    return 0
