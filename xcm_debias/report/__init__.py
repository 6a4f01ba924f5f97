"""Before/after bias reports.

Layers, bottom to top (each module imports only from layers below it; no import loop —
``tests/test_import_graph.py`` checks the whole package):

1. plain data: ``families`` (metric families, directions), ``layout`` (keys -> sections),
   ``registry``, ``bias_report.BiasReport``, ``comparison.Comparison``;
2. the renderer-neutral page: ``blocks`` (headings, tables, figure references), ``plots``
   (figures), ``headline``, ``selection``, ``document`` (a report or comparison as blocks);
3. on top: ``render_text``, ``render_markdown``, ``render_html``, ``render_json`` and
   ``evaluate`` (running a retriever on a corpus).

``BiasReport.to_html``, ``Comparison.to_json``, ``BiasReport.evaluate``... stay on the public
objects, but the objects do not import the modules that implement them: those modules register
their entry points in :mod:`xcm_debias.report.registry` and the methods look them up by name.
Why a registry rather than imports inside the methods: a method-level import is still an
import — the data layer would still depend on every renderer, and the import graph would still
loop (the graph test counts imports inside functions). With the registry, data and presentation
can be read, tested and changed one layer at a time. This ``__init__`` imports every registering
module below, and Python runs it before any submodule of the package loads, so the operations
are registered whenever ``xcm_debias.report`` is used.
"""

from __future__ import annotations

# The modules below register the operations behind the public methods when they load.
from xcm_debias.report import (  # noqa: F401
    evaluate,
    plots,
    render_html,
    render_json,
    render_markdown,
    render_text,
)
from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.comparison import Comparison, MetricDelta

__all__ = ["BiasReport", "Comparison", "MetricDelta"]
