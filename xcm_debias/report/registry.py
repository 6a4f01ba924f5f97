"""Where the report objects find the operations implemented above them.

:class:`~xcm_debias.report.bias_report.BiasReport` and
:class:`~xcm_debias.report.comparison.Comparison` are plain data at the bottom of the report
package; evaluating, comparing, rendering and reading/writing JSON live in the modules above
them. Those modules register each entry point here under a name when they load, and the public
methods (``BiasReport.evaluate``, ``to_html``...) look it up, so no data module imports a
module above it. ``xcm_debias/report/__init__.py`` imports every registering module, and Python
runs a package's ``__init__`` before any of its submodules, so the table is full as soon as any
part of ``xcm_debias.report`` is imported.

==========================  ===============================  ===================================
name                        registered by                    called as
==========================  ===============================  ===================================
``evaluate``                ``report/evaluate.py``           ``(retriever, corpus, k, ...)``
``compare``                 ``report/comparison.py``         ``(before, after, labels)``
``text``                    ``report/render_text.py``        ``(before, after, labels)``
``markdown``                ``report/render_markdown.py``    ``(before, after, labels, figure_dir)``
``html``                    ``report/render_html.py``        ``(before, after, labels)``
``plots``                   ``report/plots.py``              ``(folder, before, after, labels)``
``report_to_dict``          ``report/render_json.py``        ``(report)``
``report_from_json``        ``report/render_json.py``        ``(source)``
``comparison_to_dict``      ``report/render_json.py``        ``(comparison)``
``comparison_from_json``    ``report/render_json.py``        ``(source)``
``to_json``                 ``report/render_json.py``        ``(data: dict, path or None)``
``write_text``              ``report/render_json.py``        ``(path, text, argument name)``
==========================  ===============================  ===================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_OPERATIONS: dict[str, Callable[..., Any]] = {}


def implements(name: str) -> Callable[[F], F]:
    """Decorator: register the decorated function (or class) as the operation ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty operation name, got {name!r}")

    def register(function: F) -> F:
        known = _OPERATIONS.get(name)
        if known is not None and _where(known) != _where(function):  # a reload re-registers
            raise ValueError(
                f"name: operation {name!r} is already implemented by {_where(known)}, got "
                f"{_where(function)}"
            )
        _OPERATIONS[name] = function
        return function

    return register


def operation(name: str) -> Callable[..., Any]:
    """The function registered as ``name``."""
    if name not in _OPERATIONS:
        raise LookupError(
            f"name: expected a registered report operation, one of {sorted(_OPERATIONS)}, got "
            f"{name!r} (its module registers it on import; `import xcm_debias.report` loads all)"
        )
    return _OPERATIONS[name]


def _where(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"
