"""Write docs/api.md, the API reference, from the public API's docstrings.

    python docs/make_api.py            # rewrite docs/api.md
    python docs/make_api.py --check    # exit 1 when docs/api.md differs from the docstrings

Every name of each module's ``__all__`` (or of the listed names, for modules without one) gets
its signature and docstring; a class also gets its public methods and properties (those it
defines itself: inherited ones are documented on their base class). ``tests/test_api_docs.py``
fails when the committed page differs from what this script writes now.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

API_MD = Path(__file__).resolve().parent / "api.md"
WIDTH = 88
FENCE = "`" * 3

#: (module, names to document: None = the module's ``__all__``)
SECTIONS: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("xcm_debias", None),
    ("xcm_debias.processors", None),
    ("xcm_debias.scoring", None),
    ("xcm_debias.metrics", None),
    ("xcm_debias.report", None),
    ("xcm_debias.encoders", None),
    ("xcm_debias.langid", None),
    ("xcm_debias.language_codes", None),
    ("xcm_debias.configs", ("build", "recommended", "get_config", "list_configs", "register")),
    (
        "xcm_debias.config_spec",
        (
            "parse_spec",
            "format_spec",
            "load_config_file",
            "resolve_config",
            "check_config",
            "SpecError",
        ),
    ),
    (
        "xcm_debias.io",
        (
            "save",
            "load",
            "save_npz",
            "load_npz",
            "save_parquet",
            "load_parquet",
            "save_clip_retrieval",
            "load_clip_retrieval",
        ),
    ),
    ("xcm_debias.datasets", None),
    ("xcm_debias.plain_vectors", ("as_embedding_set", "as_query_gallery", "like_input")),
    (
        "xcm_debias.streaming",
        (
            "transform_folder",
            "FolderRun",
            "transform_shard",
            "find_shards",
            "Shard",
        ),
    ),
    ("xcm_debias.atomic", ("atomic_path", "write_text", "write_bytes", "DiskFullError")),
    ("xcm_debias.distributed", ("transform_dask",)),
    ("xcm_debias.gemm", ("backend", "onednn_preferred", "inner_products")),
    ("xcm_debias.gated_topk", ("GatedOffsetIndex",)),
    ("xcm_debias.calibration.labels", ("LabelModels", "LabelClassifier", "LABEL_MODALITIES")),
    (
        "xcm_debias.soft_labels",
        ("strip_labels", "group_weights", "group_codes", "with_inferred", "UnseenGroupWarning"),
    ),
    ("xcm_debias.worlds", None),
)


def section_names(module_name: str, names: tuple[str, ...] | None) -> list[str]:
    module = importlib.import_module(module_name)
    listed = names if names is not None else tuple(getattr(module, "__all__", ()))
    return [n for n in listed if not n.startswith("__")]


def render() -> str:
    """The whole page."""
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings by `python docs/make_api.py`; do not edit by hand "
        "(`tests/test_api_docs.py` checks that this page is up to date).",
        "Concepts: [concepts.md](concepts.md); methods: [methods/](methods/README.md); "
        "metrics: [metrics.md](metrics.md); the command line: `xcm-debias COMMAND --help` "
        "and [getting_started.md](getting_started.md).",
        "",
    ]
    for module_name, names in SECTIONS:
        anchors = ", ".join(
            f"[`{n}`](#{_anchor(module_name, n)})" for n in section_names(module_name, names)
        )
        lines.append(f"- [`{module_name}`](#{_anchor(module_name)}): {anchors}")
    lines.append("")
    for module_name, names in SECTIONS:
        lines += list(_module_section(module_name, section_names(module_name, names)))
    return "\n".join(lines).rstrip() + "\n"


def _anchor(*parts: str) -> str:
    return "-".join(p.replace(".", "-").replace("_", "-").lower() for p in parts)


def _module_section(module_name: str, names: list[str]) -> Iterator[str]:
    module = importlib.import_module(module_name)
    yield f'<a id="{_anchor(module_name)}"></a>'
    yield ""
    yield f"## `{module_name}`"
    yield ""
    yield from _doc(module)
    for name in names:
        yield from _entry(module_name, name, getattr(module, name))


def _entry(module_name: str, name: str, obj: object) -> Iterator[str]:
    yield f'<a id="{_anchor(module_name, name)}"></a>'
    yield ""
    if inspect.isclass(obj):
        bases = [b.__name__ for b in obj.__bases__ if b is not object]
        kind = "exception" if issubclass(obj, BaseException) else "class"
        yield f"### {kind} `{name}`" + (f" ({', '.join(bases)})" if bases else "")
        yield ""
        yield from _signature_block(name, _init_of(obj))
        yield from _doc(obj)
        yield from _members(obj)
    elif callable(obj):
        yield f"### `{name}()`"
        yield ""
        yield from _signature_block(name, obj)
        yield from _doc(obj)
    else:
        yield f"### `{name}`"
        yield ""
        text = repr(obj)
        if len(text) > WIDTH * 3:
            text = (
                f"{type(obj).__name__} of {len(obj)} entries" if hasattr(obj, "__len__") else text
            )
        yield "```python"
        yield f"{name} = {text}"
        yield "```"
        yield ""


def _init_of(cls: type) -> Callable | None:
    if "__init__" in cls.__dict__ or "__dataclass_fields__" in cls.__dict__:
        return cls
    return None


def _members(cls: type) -> Iterator[str]:
    for attr, value in cls.__dict__.items():
        if attr.startswith("_"):
            continue
        if isinstance(value, property):
            yield f"- **`{attr}`** (property)" + _first_paragraph(value)
        elif isinstance(value, (staticmethod, classmethod)) or inspect.isfunction(value):
            function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            prefix = "static " if isinstance(value, staticmethod) else ""
            prefix = "class " if isinstance(value, classmethod) else prefix
            signature = _format_signature(
                attr, function, skip_first=not isinstance(value, staticmethod), wrap=False
            )
            yield f"- {prefix}method `{signature}`" + _first_paragraph(function)
    yield ""


def _first_paragraph(obj: object) -> str:
    doc = inspect.getdoc(obj)
    if not doc:
        return ""
    paragraph = " ".join(doc.split("\n\n", 1)[0].split())
    return f" — {paragraph}"


def _doc(obj: object) -> Iterator[str]:
    """The docstring verbatim in a text block (docstrings mix reST and Markdown)."""
    doc = inspect.getdoc(obj)
    if doc:
        yield "```text"
        yield doc.replace(FENCE, "'" * 3)
        yield FENCE
        yield ""


def _signature_block(name: str, obj: Callable | None) -> Iterator[str]:
    if obj is None:
        return
    try:
        text = _format_signature(name, obj, skip_first=False)
    except (TypeError, ValueError):
        return
    yield "```python"
    yield text
    yield "```"
    yield ""


def _format_signature(name: str, obj: Callable, *, skip_first: bool, wrap: bool = True) -> str:
    """``name(a: int = 1, *, b: str | None = None) -> T`` with annotations as written in the
    source (string annotations unquoted), one parameter per line when it is long."""
    signature = inspect.signature(obj)
    params = list(signature.parameters.values())
    if skip_first and params and params[0].name in ("self", "cls"):
        params = params[1:]
    parts: list[str] = []
    star_done = False
    for i, p in enumerate(params):
        if p.kind is p.POSITIONAL_ONLY and (
            i + 1 == len(params) or params[i + 1].kind is not p.POSITIONAL_ONLY
        ):
            parts.append(_param(p))
            parts.append("/")
            continue
        if p.kind is p.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        if p.kind is p.VAR_POSITIONAL:
            star_done = True
        parts.append(_param(p))
    returns = ""
    if signature.return_annotation is not inspect.Signature.empty:
        returns = f" -> {_annotation(signature.return_annotation)}"
    one_line = f"{name}({', '.join(parts)}){returns}"
    if len(one_line) <= WIDTH or not wrap:
        return one_line
    body = "".join(f"\n    {part}," for part in parts)
    return f"{name}({body}\n){returns}"


def _param(p: inspect.Parameter) -> str:
    prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
    text = prefix + p.name
    if p.annotation is not inspect.Parameter.empty:
        text += f": {_annotation(p.annotation)}"
    if p.default is not inspect.Parameter.empty:
        text += (" = " if p.annotation is not inspect.Parameter.empty else "=") + repr(p.default)
    return text


def _annotation(annotation: object) -> str:
    if isinstance(annotation, str):
        return annotation
    return inspect.formatannotation(annotation)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/api.md from the docstrings.")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = API_MD.read_text(encoding="utf-8") if API_MD.exists() else ""
        if current != text:
            print(f"{API_MD} is stale; regenerate with: python docs/make_api.py", file=sys.stderr)
            return 1
        return 0
    API_MD.write_text(text, encoding="utf-8")
    print(f"wrote {API_MD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
