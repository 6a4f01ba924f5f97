"""Pipelines as one line of text (a *chain spec*) or a TOML file, both turned into the config
dicts of :mod:`xcm_debias.configs` (``build(config)`` makes the ``Debiased``).

A chain spec reads left to right like the pipeline it describes::

    LanguageAlignment(method=ridge, target=centroid); t2i: GroupBalance(temperature=0.02);
    i2t: InvertedSoftmax(beta=20.0) | GroupBalance(temperature=0.005); cross_fit=5

Grammar (whitespace is free)::

    spec    := part (";" part)*           an empty spec is the identity pipeline
    part    := option | [direction ":"] stage ("|" stage)*
    option  := ("guard" | "cross_fit" | "seed") "=" value
    direction := "t2i" | "i2t"
    stage   := Class ["(" [name "=" value ("," name "=" value)*] ")"]
    value   := number | true | false | null | "text" | 'text' | word | "[" [value ("," value)*] "]"

``|`` means *then*. Stages without a direction are the embedding-level processors
(``xcm_debias.processors``), in order, optionally followed by score stages
(``xcm_debias.scoring``) applied to both directions; ``t2i:`` / ``i2t:`` parts hold the score
stages of one direction. A bare word is a string (``method=ridge``). Every class and parameter
name is checked; an error names the bad token and its column.

``guard=L`` makes the pipeline *self-calibrating*: its ``fit`` lets a recall guard
(:class:`xcm_debias.calibration.guard.RecallGuard`, ``max_recall_loss=L``) choose the processors
and score stages from the calibration data, out-of-fold, among its candidate options; stages
written beside it are ignored by the guard's choice, so write ``guard=0.01; cross_fit=5`` alone
(the registered ``recommended`` pipeline).

:func:`parse_spec` and :func:`format_spec` are inverse: ``parse_spec(format_spec(c)) == c`` for
every config ``c`` in canonical form (the form :func:`parse_spec` returns: ``processors`` and
``scoring`` always present, each stage ``{"class": ..., "params": {...}}``).

A TOML file holds the config dict itself (``[[processors]]`` tables with ``class`` and
``params``; ``[[scoring.t2i]]`` / ``[[scoring.i2t]]``, or ``[[scoring]]`` for both; top-level
``guard``, ``cross_fit`` and ``seed``); :func:`load_config_file` reads and checks it.
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xcm_debias.config_registry import get_config, list_configs
from xcm_debias.debiased import DIRECTIONS
from xcm_debias.processors import PostProcessor
from xcm_debias.scoring import ScoreNormalizer
from xcm_debias.spec_text import _KEYWORDS, OPTIONS, format_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10
    import tomli as tomllib


_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
      | (?P<string>"(?:[^"\\]|\\.)*"|'[^']*')
      | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
      | (?P<punct>[()\[\],=:;|])
    """,
    re.VERBOSE,
)


class SpecError(ValueError):
    """A chain spec or config file that does not describe a pipeline; says where and why."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    column: int  # 1-based


def _tokenize(spec: str) -> list[_Token]:
    tokens, position = [], 0
    while position < len(spec):
        match = _TOKEN.match(spec, position)
        if match is None:
            raise SpecError(
                f"spec: unexpected character {spec[position]!r} at column {position + 1}"
            )
        if match.lastgroup != "space":
            tokens.append(_Token(str(match.lastgroup), match.group(), position + 1))
        position = match.end()
    tokens.append(_Token("end", "", len(spec) + 1))
    return tokens


class _Parser:
    def __init__(self, spec: str) -> None:
        self.tokens = _tokenize(spec)
        self.i = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.i]

    def error(self, expected: str, token: _Token | None = None) -> SpecError:
        token = token or self.token
        got = "the end of the spec" if token.kind == "end" else repr(token.text)
        return SpecError(f"spec: expected {expected} at column {token.column}, got {got}")

    def take(self, text: str) -> bool:
        if self.token.kind == "punct" and self.token.text == text:
            self.i += 1
            return True
        return False

    def expect(self, text: str, what: str) -> None:
        if not self.take(text):
            raise self.error(what)

    def word(self, what: str) -> _Token:
        token = self.token
        if token.kind != "word":
            raise self.error(what)
        self.i += 1
        return token

    def value(self) -> Any:
        token = self.token
        if self.take("["):
            values: list[Any] = []
            if not self.take("]"):
                values.append(self.value())
                while self.take(","):
                    values.append(self.value())
                self.expect("]", "',' or ']' in a list")
            return values
        self.i += 1
        if token.kind == "number":
            return float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
        if token.kind == "string":
            if token.text.startswith("'"):
                return token.text[1:-1]
            return json.loads(token.text)
        if token.kind == "word":
            return _KEYWORDS.get(token.text, token.text)
        self.i -= 1
        raise self.error("a value (number, true/false/null, text or [list])")

    def stage(self) -> tuple[dict[str, Any], _Token]:
        name = self.word("a stage (a processor or scorer class name)")
        cls = _stage_class(name)
        params: dict[str, Any] = {}
        if self.take("("):
            if not self.take(")"):
                while True:
                    key = self.word(f"a parameter name of {name.text}")
                    _check_parameter(cls, key.text, "spec: ", f" at column {key.column}")
                    if key.text in params:
                        raise SpecError(
                            f"spec: parameter {key.text!r} of {name.text} given twice "
                            f"(column {key.column})"
                        )
                    self.expect("=", f"'=' after {key.text!r}")
                    params[key.text] = self.value()
                    if self.take(")"):
                        break
                    self.expect(",", f"',' or ')' in the parameters of {name.text}")
        return {"class": name.text, "params": params}, name


def _stage_class(token: _Token) -> type:
    processors = {k: v for k, v in PostProcessor.registry.items() if k != "Chain"}
    scorers = ScoreNormalizer.registry
    if token.text in processors:
        return processors[token.text]
    if token.text in scorers:
        return scorers[token.text]
    known = sorted(processors) + sorted(scorers)
    close = difflib.get_close_matches(token.text, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise SpecError(
        f"spec: unknown stage {token.text!r} at column {token.column}{hint}; processors: "
        f"{', '.join(sorted(processors))}; scorers: {', '.join(sorted(scorers))}"
    )


def _check_parameter(cls: type, name: str, where: str, at: str = "") -> None:
    parameters = [
        p
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if name not in {p.name for p in parameters}:
        raise SpecError(
            f"{where}{cls.__name__} has no parameter {name!r}{at}; its parameters: "
            f"{', '.join(p.name for p in parameters)}"
        )


def parse_spec(spec: str) -> dict[str, Any]:
    """The config dict (canonical form) of a chain spec; see the module docstring.

    Raises:
        SpecError: (a ``ValueError``) naming the bad token and its column.
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec: expected a string, got {type(spec).__name__}")
    parser = _Parser(spec)
    processors: list[dict[str, Any]] = []
    both: list[dict[str, Any]] | None = None
    directed: dict[str, list[dict[str, Any]]] = {}
    options: dict[str, Any] = {}
    if parser.token.kind == "end":
        return {"processors": [], "scoring": []}
    while True:
        start = parser.token
        if start.kind == "end":
            raise parser.error("a part after ';'")
        following = parser.tokens[parser.i + 1]
        if start.kind == "word" and following.text in ("=", ":") and following.kind == "punct":
            parser.i += 2
            if following.text == "=":
                _check_new_name(start, OPTIONS, options, "option")
                options[start.text] = parser.value()
            else:
                _check_new_name(start, DIRECTIONS, directed, "direction")
                directed[start.text] = _score_stages(parser, start.text)
        else:
            if both is not None:
                raise SpecError(
                    f"spec: a second part without a direction at column {start.column}; "
                    "give the processors (and score stages for both directions) in one part, "
                    "joined by '|'"
                )
            both = []
            for stage, token in _stages(parser):
                if stage["class"] in ScoreNormalizer.registry:
                    both.append(stage)
                elif both:
                    raise SpecError(
                        f"spec: processor {token.text!r} at column {token.column} after a score "
                        "stage; embedding-level processors come first"
                    )
                else:
                    processors.append(stage)
        if parser.take(";"):
            continue
        if parser.token.kind != "end":
            raise parser.error("'|', ';' or the end of the spec")
        break
    if both and directed:
        raise SpecError(
            "spec: score stages for both directions and per direction "
            f"({', '.join(directed)}); give them one way or the other"
        )
    config: dict[str, Any] = {"processors": processors, "scoring": directed or both or []}
    config.update(options)
    return config


def _stages(parser: _Parser) -> list[tuple[dict[str, Any], _Token]]:
    stages = [parser.stage()]
    while parser.take("|"):
        stages.append(parser.stage())
    return stages


def _score_stages(parser: _Parser, direction: str) -> list[dict[str, Any]]:
    stages = []
    for stage, token in _stages(parser):
        if stage["class"] not in ScoreNormalizer.registry:
            raise SpecError(
                f"spec: {token.text!r} at column {token.column} is a processor; a {direction}: "
                "part takes score stages only (processors go first, without a direction)"
            )
        stages.append(stage)
    return stages


def format_spec(config: str | Mapping[str, Any]) -> str:
    """The chain spec of a config dict or registered config name (inverse of :func:`parse_spec`)."""
    spec = get_config(config) if isinstance(config, str) else config
    if not isinstance(spec, Mapping):
        raise TypeError(f"config: expected a name or a dict, got {type(config).__name__}")
    check_config(spec)
    return format_config(spec)


def check_config(config: Mapping[str, Any], source: str = "config") -> None:
    """Check a config dict's structure, classes and parameter names; errors name the entry."""
    if not isinstance(config, Mapping):
        raise SpecError(f"{source}: expected a table/dict, got {type(config).__name__}")
    unknown = sorted(set(config) - {"processors", "scoring", *OPTIONS})
    if unknown:
        raise SpecError(
            f"{source}: unknown keys {unknown}; expected processors, scoring, guard, "
            "cross_fit, seed"
        )
    if "guard" in config:
        guard = config["guard"]
        if isinstance(guard, bool) or not isinstance(guard, (int, float)) or not 0 <= guard <= 1:
            raise SpecError(
                f"{source}: guard: expected the largest recall@1 loss allowed, a number in "
                f"[0, 1], got {guard!r}"
            )
    processors = config.get("processors") or []
    if not isinstance(processors, list):
        raise SpecError(f"{source}: processors: expected a list, got {type(processors).__name__}")
    for i, stage in enumerate(processors):
        _check_stage(stage, PostProcessor.registry, f"{source}: processors[{i}]")
    scoring = config.get("scoring") or []
    groups = scoring.items() if isinstance(scoring, Mapping) else [(None, scoring)]
    for direction, stages in groups:
        where = f"{source}: scoring" + ("" if direction is None else f".{direction}")
        if direction is not None and direction not in DIRECTIONS:
            raise SpecError(f"{where}: expected a direction in {sorted(DIRECTIONS)}")
        if not isinstance(stages, list):
            raise SpecError(f"{where}: expected a list, got {type(stages).__name__}")
        for i, stage in enumerate(stages):
            _check_stage(stage, ScoreNormalizer.registry, f"{where}[{i}]")


def _check_stage(stage: object, registry: Mapping[str, type], where: str) -> None:
    if not isinstance(stage, Mapping):
        raise SpecError(f"{where}: expected a table with class and params, got {stage!r}")
    extra = sorted(set(stage) - {"class", "params", "fitted_meta"})
    if extra:
        raise SpecError(f"{where}: unknown keys {extra}; expected class and params")
    name = stage.get("class")
    if name not in registry:
        raise SpecError(f"{where}: unknown class {name!r}; expected one of {sorted(registry)}")
    params = stage.get("params", {})
    if not isinstance(params, Mapping):
        raise SpecError(f"{where}: params: expected a table, got {type(params).__name__}")
    if name == "Chain":
        return
    for key in params:
        _check_parameter(registry[name], key, f"{where}: ")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The config dict of a TOML file (same structure as a config dict), checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such TOML file: {str(path)!r}")
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    check_config(config, str(path))
    config.setdefault("processors", [])
    config.setdefault("scoring", [])
    for stage in _all_stages(config):
        stage.setdefault("params", {})
    return config


def _all_stages(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    scoring = config["scoring"]
    groups = scoring.values() if isinstance(scoring, Mapping) else [scoring]
    return [*config["processors"], *(s for stages in groups for s in stages)]


def resolve_config(pipeline: str) -> dict[str, Any]:
    """A config dict from a registered name (``list_configs()``), a ``.toml`` file, or a spec."""
    if not isinstance(pipeline, str):
        raise TypeError(f"pipeline: expected a string, got {type(pipeline).__name__}")
    if pipeline in list_configs():
        return get_config(pipeline)
    if pipeline.endswith(".toml"):
        return load_config_file(pipeline)
    return parse_spec(pipeline)


def _check_new_name(
    token: _Token, known: Collection[str], seen: Mapping[str, object], what: str
) -> None:
    """A clear error when ``token`` names no known ``what`` or one already given."""
    if token.text not in known:
        raise SpecError(
            f"spec: unknown {what} {token.text!r} at column {token.column}; "
            f"{what}s: {', '.join(known)}"
        )
    if token.text in seen:
        raise SpecError(f"spec: {what} {token.text!r} given twice")
