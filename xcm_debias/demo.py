"""The demo: the embedded world, before and after the recommended debiasing chain."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from xcm_debias.atomic import write_text
from xcm_debias.configs import build, get_config
from xcm_debias.report import BiasReport
from xcm_debias.report.comparison import Comparison
from xcm_debias.retrieval import ExactRetriever


@dataclass
class DemoResult:
    """What the demo measured and where it wrote it."""

    before: BiasReport
    after: BiasReport
    comparison: Comparison
    files: list[Path]
    seconds: float


def run_demo(
    out: str | Path = "xcm_debias_demo",
    *,
    seed: int = 0,
    n_items: int | None = None,
    config: str = "recommended",
    k: int = 10,
    log: bool = True,
) -> DemoResult:
    """Build/load the world, evaluate the plain retriever, fit ``config`` on the calibration
    split, evaluate again on the test split, and write report.html, report.json, report.md and
    the plots into ``out``.
    """
    from xcm_debias.worlds import CULTURE_OF_LANGUAGE, LOW_RESOURCE, world_calibration_test

    def say(message: str) -> None:
        if log:
            print(message, flush=True)

    get_config(config)  # an unknown name fails here, before the world is built
    start = time.perf_counter()
    say(f"world: seed {seed}, loading (first run builds and caches it)...")
    calib, test = world_calibration_test(seed=seed, n_items=n_items)
    say(f"world: calibration {calib!r}\n       test {test!r}")
    base = ExactRetriever()
    culture_map = dict(CULTURE_OF_LANGUAGE)
    before = BiasReport.evaluate(
        base, test, k=k, culture_of_language=culture_map, low_resource=LOW_RESOURCE
    )
    say(f"fitting {config!r} on the calibration split...")
    fair = build(config, base).fit(calib)
    after = BiasReport.evaluate(
        fair, test, k=k, culture_of_language=culture_map, low_resource=LOW_RESOURCE
    )
    comparison = before.compare(after)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    comparison.to_html(folder / "report.html")
    comparison.to_json(folder / "report.json")
    write_text(folder / "report.md", comparison.to_markdown(figure_dir="plots"))
    files = [folder / "report.html", folder / "report.json", folder / "report.md"]
    files += comparison.save_plots(folder / "plots")
    return DemoResult(before, after, comparison, files, time.perf_counter() - start)
