"""``xcm-debias transform PIPELINE INPUT OUTPUT``: stream embedding shards through a pipeline."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from xcm_debias.cli import CLIError
from xcm_debias.cli._outputs import check_outputs

if TYPE_CHECKING:  # torch-backed modules load in run(), so --help answers at once
    from xcm_debias.processors.base import PostProcessor

EPILOG = """\
PIPELINE is a processor file (PostProcessor.save, e.g. fair.processors.save(path)) or a
pipeline file of `xcm-debias fit` / Debiased.save, whose embedding-level processors are
applied. Score-level stages change scores, not vectors: they are not in the output (serve
them with Debiased, e.g. over FaissRetriever, or measure them with `report --pipeline`).

examples:
  xcm-debias transform processors.safetensors embeddings/ debiased_embeddings/
  xcm-debias transform pipeline.safetensors shards/ out/ --modality text --batch-size 8192
  xcm-debias transform pipeline.safetensors test.npz test_debiased.npz
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "transform",
        help="apply a fitted pipeline to embedding shards (constant memory, resumable)",
        description=textwrap.fill(
            "Stream every .npy shard of INPUT (a clip-retrieval folder: img_emb/, text_emb/, "
            "metadata/; or a plain folder of .npy shards with --modality) through the fitted "
            "pipeline PIPELINE into OUTPUT, keeping each shard's float dtype. Each shard is "
            "written atomically and recorded in OUTPUT's manifest (pipeline and input hashes); "
            "rerunning after a crash skips the shards the manifest verifies and redoes the "
            "rest. INPUT may also be one saved EmbeddingSet (.npz or "
            ".parquet), transformed in memory into OUTPUT (.npz or .parquet).",
            78,
            break_on_hyphens=False,
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "pipeline",
        metavar="PIPELINE",
        help="fitted processor or pipeline file (.safetensors; see below)",
    )
    parser.add_argument(
        "input",
        metavar="INPUT",
        help="input folder of embedding shards, or a .npz/.parquet EmbeddingSet",
    )
    parser.add_argument(
        "output",
        metavar="OUTPUT",
        help="output folder (created; same layout as INPUT), or a .npz/.parquet file",
    )
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
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing OUTPUT file, or redo every shard of an OUTPUT folder written "
        "by another pipeline (an input is never overwritten)",
    )
    return parser


def load_processors(path: str | Path) -> PostProcessor:
    """The embedding-level processors of a processor file or of a saved ``Debiased``."""
    from safetensors import safe_open

    from xcm_debias.debiased import Debiased
    from xcm_debias.processors.base import _METADATA_KEY, PostProcessor

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PIPELINE: no such file: {str(path)!r}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = (f.metadata() or {}).get(_METADATA_KEY)
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise CLIError(f"PIPELINE: {path} is not a .safetensors file ({exc})") from None
    config = json.loads(header).get("config", {}) if header else {}
    if config.get("class") != "Debiased":
        return PostProcessor.load(path)
    pipeline = Debiased.load(path)
    if pipeline.processors is None:
        raise CLIError(
            f"PIPELINE: {path} has no embedding-level processors (only score stages), so it "
            "changes no vector; measure it with `xcm-debias report --pipeline`"
        )
    stages = sum(len(s) for s in pipeline.scorers_.values())
    if stages:
        print(
            f"xcm-debias transform: applying the processors of {path}; its {stages} score "
            "stage(s) act at search time and are not in the output",
            file=sys.stderr,
        )
    return pipeline.processors


def run(args: argparse.Namespace) -> int:
    from xcm_debias.data import EmbeddingSet
    from xcm_debias.streaming import transform_folder

    if args.batch_size < 1:
        raise CLIError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    processors = load_processors(args.pipeline)
    source = Path(args.input)
    if source.suffix in (".npz", ".parquet"):
        if Path(args.output).suffix not in (".npz", ".parquet"):
            raise CLIError(
                f"OUTPUT: expected a .npz or .parquet file for a {source.suffix} INPUT, "
                f"got {args.output!r}"
            )
        check_outputs(
            {"INPUT": args.input, "PIPELINE": args.pipeline}, {"OUTPUT": args.output}, args.force
        )
        data = EmbeddingSet.load(source)
        out = processors.transform(data)
        if out.embeddings.dtype != data.embeddings.dtype:  # keep the input's dtype
            out = out.with_embeddings(out.embeddings.to(data.embeddings.dtype))
        out.save(args.output)
        print(f"{len(data)} rows in {args.output}")
        return 0
    if Path(args.output).resolve() == Path(args.pipeline).resolve():
        raise CLIError(f"OUTPUT: expected a path other than PIPELINE, got {args.output!r}")
    run = transform_folder(
        processors,
        args.input,
        args.output,
        modality=args.modality,
        batch_size=args.batch_size,
        progress=not args.quiet,
        overwrite=args.force,
        log=None if args.quiet else lambda line: print(line, file=sys.stderr),
    )
    summary = f"{len(run)} shard(s) in {args.output}"
    if run.skipped:
        names = ", ".join(p.name for p in run.skipped[:5]) + (
            ", ..." if len(run.skipped) > 5 else ""
        )
        summary += f" ({len(run.skipped)} already done and verified, skipped: {names})"
    print(summary)
    return 0
