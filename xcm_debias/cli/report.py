"""``xcm-debias report CORPUS``: the bias report of exact retrieval on a saved corpus, or of a
fitted pipeline against exact retrieval (``--pipeline``)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from xcm_debias.atomic import write_text
from xcm_debias.cli import CLIError

DEFAULT_OUT = "xcm_debias_report"
EPILOG = """\
outputs (in --out):
  report.json       every metric (flat keys), the k-occurrence lists and the configuration;
                    BiasReport.from_json reads it back, and --baseline takes it
  report.md         the tables of the terminal output as Markdown, linking plots/*.png
  report.html       one self-contained page: tables and inline plots, no external resource
  plots/*.png       recall_by_language, language_share, culture_heatmap, k_occurrence
  comparison.json   with --baseline or --pipeline: before (the baseline, or exact retrieval),
                    after (this run) and deltas

examples:
  xcm-debias report corpus.npz
  xcm-debias report embeddings/ --k 5 --out out/ --culture-map en=us --culture-map ja=jp
  xcm-debias report debiased.npz --baseline xcm_debias_report/report.json --out after/
  xcm-debias report test.npz --pipeline pipeline.safetensors --out compared/
  xcm-debias report test.npz --pipeline pipeline.safetensors --infer-labels
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report",
        help="measure language/culture bias and hubness of exact retrieval on a saved corpus",
        description=textwrap.fill(
            "Evaluate ExactRetriever (cosine, exact top-k) on CORPUS in both directions: "
            "text→image (captions query the images) and image→text (images query the "
            "captions), relevance = same item. Prints the report (retrieval, language "
            "prevalence, cultural tugging, consistency, hubness) and writes it as JSON, "
            "Markdown and a self-contained HTML page with plots. With --pipeline (a file "
            "written by `xcm-debias fit` or Debiased.save), the fitted pipeline is evaluated "
            "too and shown against exact retrieval.",
            78,
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "corpus",
        metavar="CORPUS",
        nargs="?",  # required; may also follow --culture-map's pairs (see CultureMapAction)
        help="saved EmbeddingSet with images and captions: a .npz, a .parquet, or a "
        "clip-retrieval folder (img_emb/, text_emb/, metadata/)",
    )
    parser.add_argument(
        "--k", type=int, default=10, help="depth of the top-k lists (recall@k, N_k; default 10)"
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=DEFAULT_OUT,
        help=f"output folder, created if needed (default ./{DEFAULT_OUT})",
    )
    parser.add_argument(
        "--culture-map",
        metavar="LANG=CULTURE",
        nargs="+",
        action=CultureMapAction,
        default=None,
        help="culture associated with a caption language, for own-culture metrics "
        "(repeatable; default: the culture label equal to the language code)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REPORT_JSON",
        default=None,
        help="a report.json of an earlier run: print and render this run against it "
        "(before = baseline, after = this run)",
    )
    parser.add_argument(
        "--pipeline",
        metavar="FILE",
        default=None,
        help="a fitted pipeline (.safetensors from `xcm-debias fit` or Debiased.save): report "
        "it on CORPUS against exact retrieval (before = exact, or --baseline; after = pipeline)",
    )
    parser.add_argument(
        "--infer-labels",
        action="store_true",
        help="with --pipeline: search without any caption language or image culture (the "
        "pipeline infers them, as for unlabelled queries and galleries), score with CORPUS's "
        "labels, and show how much each metric moves against the labelled search",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


class CultureMapAction(argparse.Action):
    """``--culture-map`` pairs, extended over repeats; a last value without ``=`` is CORPUS.

    ``nargs="+"`` takes every word up to the next option, so in
    ``report --culture-map en=en de=de corpus.npz`` the corpus would be swallowed: it is kept
    aside as ``corpus_after_culture_map`` and ``corpus_path`` takes it as CORPUS.
    """

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        values = list(values)
        if len(values) > 1 and "=" not in values[-1]:
            namespace.corpus_after_culture_map = values.pop()
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), *values])


def corpus_path(args: argparse.Namespace) -> str:
    """CORPUS, given as the positional argument or right after ``--culture-map``'s pairs."""
    after_map = getattr(args, "corpus_after_culture_map", None)
    if args.corpus is None and after_map is None:
        raise CLIError(
            "CORPUS: expected a saved EmbeddingSet (.npz, .parquet or a folder), got none"
        )
    if args.corpus is not None and after_map is not None:
        raise CLIError(f"--culture-map: expected LANG=CULTURE, got {after_map!r}")
    return args.corpus if args.corpus is not None else after_map


def parse_culture_map(items: list[str] | None) -> dict[str, str] | None:
    """``["de=DE", "ja=JP"]`` -> ``{"de": "DE", "ja": "JP"}``."""
    if items is None:
        return None
    mapping: dict[str, str] = {}
    for item in items:
        language, sep, culture = item.partition("=")
        if not sep or not language or not culture or "=" in culture:
            raise CLIError(f"--culture-map: expected LANG=CULTURE, got {item!r}")
        if mapping.get(language, culture) != culture:
            raise CLIError(
                f"--culture-map: expected one culture per language, got {language!r} mapped "
                f"to {mapping[language]!r} and {culture!r}"
            )
        mapping[language] = culture
    return mapping


def run(args: argparse.Namespace) -> int:
    corpus_file = corpus_path(args)
    if args.k < 1:
        raise CLIError(f"--k: expected a positive integer, got {args.k}")
    culture_map = parse_culture_map(args.culture_map)
    if args.infer_labels and args.pipeline is None:
        raise CLIError("--infer-labels: expected --pipeline (a fitted pipeline infers labels)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out: expected a folder, got the file {str(out)!r}")
    from tqdm import tqdm

    from xcm_debias.data import EmbeddingSet
    from xcm_debias.debiased import Debiased
    from xcm_debias.report import BiasReport
    from xcm_debias.retrieval import ExactRetriever

    baseline = None
    if args.baseline is not None:
        try:
            baseline = BiasReport.from_json(Path(args.baseline))
        except (FileNotFoundError, ValueError) as exc:
            raise CLIError(f"--baseline: {exc}") from None

    retriever = ExactRetriever()
    if args.pipeline is not None:
        try:
            retriever = Debiased.load(args.pipeline)
        except (FileNotFoundError, ValueError) as exc:
            raise CLIError(f"--pipeline: {exc}") from None
        if args.infer_labels and retriever.label_models_ is None:
            raise CLIError(
                f"--infer-labels: the pipeline {args.pipeline} has no label models (no stage "
                "reads a caption language or an image culture)"
            )

    stages = tqdm(
        total=4,
        desc="xcm-debias report",
        unit="stage",
        file=sys.stderr,
        leave=False,
        disable=True if args.quiet else None,  # None: shown only when stderr is a terminal
    )
    with stages:
        stages.set_postfix_str("loading corpus")
        corpus = EmbeddingSet.load(corpus_file)
        if culture_map is not None:
            unknown = sorted(set(culture_map) - set(corpus.texts.languages()))
            if unknown:
                raise CLIError(
                    f"--culture-map: languages {unknown} are not caption languages of the "
                    f"corpus {corpus.texts.languages()}"
                )
        stages.update()
        stages.set_postfix_str(f"retrieving and scoring ({len(corpus)} rows, k={args.k})")
        report = BiasReport.evaluate(
            retriever,
            corpus,
            k=args.k,
            culture_of_language=culture_map,
            infer_labels=args.infer_labels,
        )
        labels = ("baseline", "this run")
        if args.pipeline is not None and baseline is None:
            baseline = BiasReport.evaluate(
                ExactRetriever(), corpus, k=args.k, culture_of_language=culture_map
            )
            labels = ("exact", "pipeline")
        stages.update()
        stages.set_postfix_str("writing JSON and Markdown")
        shown = report if baseline is None else baseline.compare(report, labels)
        out.mkdir(parents=True, exist_ok=True)
        report.to_json(out / "report.json")
        if baseline is not None:
            shown.to_json(out / "comparison.json")
        write_text(out / "report.md", shown.to_markdown(figure_dir="plots"))
        stages.update()
        stages.set_postfix_str("drawing plots and HTML")
        plots = shown.save_plots(out / "plots")
        shown.to_html(out / "report.html")
        stages.update()
    print(shown)
    print(
        f"wrote report.json, report.md, report.html and {len(plots)} plot(s) to {out}",
        file=sys.stderr,
    )
    return 0
