"""Layout of metric keys into report sections: scalar rows, per-group tables and matrices.

Every key lands in exactly one place of one section (see :data:`families.FAMILIES`):

- no qualifier -> a scalar row (``t2i/recall@1``);
- one qualifier -> a compact per-group table, one row per group value, one column per base
  (``t2i/recall@1/lang=de`` -> row ``de`` of "text→image, per query language");
- two qualifiers -> a matrix (``t2i/culture_share@1/lang=de/culture=ja`` -> row ``de``,
  column ``ja``);
- anything else -> a scalar row under its full key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from xcm_debias.report import families

TASK_TITLES = {"t2i": "text→image", "i2t": "image→text", "": "all"}
_GROUP_TITLES = {
    ("t2i", "lang"): "query language",
    ("i2t", "lang"): "caption language",
    ("t2i", "culture"): "image culture",
    ("i2t", "culture"): "image culture",
}
_TASK_ORDER = {"t2i": 0, "i2t": 1}


def task_of(base: str) -> str:
    """``"t2i"``/``"i2t"`` from a base key's first part, ``""`` for task-free keys."""
    head = base.split("/", 1)[0]
    return head if head in _TASK_ORDER and "/" in base else ""


def group_title(task: str, qualifier: str) -> str:
    return _GROUP_TITLES.get((task, qualifier), qualifier)


def short_name(base: str) -> str:
    """Base key without its task prefix (``t2i/own_culture@1`` -> ``own_culture@1``)."""
    return base.split("/", 1)[1] if task_of(base) else base


def column_headers(bases: Sequence[str]) -> list[str]:
    """Compact headers for a per-group table: task prefix dropped, and a word prefix shared
    by every column dropped from the columns that continue it with ``_``
    (``own_culture@1, own_culture_chance`` -> ``own_culture@1, chance``)."""
    names = [short_name(base) for base in bases]
    prefix = os.path.commonprefix(names) if len(names) > 1 else ""
    if not prefix or any(len(n) > len(prefix) and n[len(prefix)] not in "_@" for n in names):
        return names
    return [n[len(prefix) + 1 :] if n[len(prefix) :].startswith("_") else n for n in names]


def display_order(key: str) -> tuple[object, ...]:
    """Sort key: family order, then task (t2i first), then natural order; a ``*_null@k``
    random-retriever baseline sorts right after its metric."""
    plain = key.replace("_null@", "@")
    base, _ = families.split_key(plain)
    return (
        families.family_rank(plain),
        _TASK_ORDER.get(task_of(base), 2),
        families.natural_key(plain),
        "_null@" in key,
    )


@dataclass(frozen=True)
class GroupTable:
    """Per-group rows of one task: ``key(group, column)`` is the metric key of a cell."""

    task: str
    qualifier: str
    groups: tuple[str, ...]
    columns: tuple[str, ...]  # base keys
    present: frozenset[str]

    @property
    def title(self) -> str:
        return f"{TASK_TITLES[self.task]}, per {group_title(self.task, self.qualifier)}"

    def key(self, group: str, column: str) -> str | None:
        key = families.join_key(column, ((self.qualifier, group),))
        return key if key in self.present else None


@dataclass(frozen=True)
class Matrix:
    """A base with two qualifiers: ``key(row, column)`` is the metric key of a cell."""

    base: str
    row_qualifier: str
    column_qualifier: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    present: frozenset[str]

    def key(self, row: str, column: str) -> str | None:
        key = families.join_key(
            self.base, ((self.row_qualifier, row), (self.column_qualifier, column))
        )
        return key if key in self.present else None


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    scalars: tuple[str, ...]
    tables: tuple[GroupTable, ...]
    matrices: tuple[Matrix, ...]

    def keys(self) -> set[str]:
        """Every metric key shown in this section."""
        shown = set(self.scalars)
        for table in self.tables:
            shown.update(table.present)
        for matrix in self.matrices:
            shown.update(matrix.present)
        return shown


def _ordered(values: Iterable[str], preferred: Sequence[str]) -> tuple[str, ...]:
    values = set(values)
    first = [v for v in preferred if v in values]
    rest = sorted(values - set(first), key=families.natural_key)
    return (*first, *rest)


def layout(
    keys: Iterable[str], group_order: Mapping[str, Sequence[str]] | None = None
) -> list[Section]:
    """Sections (in :data:`families.SECTIONS` order, empty ones omitted) holding ``keys``.

    ``group_order`` maps a qualifier name (``"lang"``, ``"culture"``) to the preferred order of
    its values (e.g. the report's language list); other values follow in natural order.
    """
    group_order = dict(group_order or {})
    by_section: dict[str, list[str]] = {}
    for key in sorted(set(keys), key=display_order):
        by_section.setdefault(families.family_of(key).section, []).append(key)

    sections = []
    for name, title in families.SECTIONS:
        section_keys = by_section.get(name, [])
        if not section_keys:
            continue
        scalars: list[str] = []
        tables: dict[tuple[str, str], list[str]] = {}
        matrices: dict[tuple[str, str, str], list[str]] = {}
        for key in section_keys:
            base, qualifiers = families.split_key(key)
            if len(qualifiers) == 1:
                tables.setdefault((task_of(base), qualifiers[0][0]), []).append(key)
            elif len(qualifiers) == 2 and qualifiers[0][0] != qualifiers[1][0]:
                matrices.setdefault((base, qualifiers[0][0], qualifiers[1][0]), []).append(key)
            else:
                scalars.append(key)
        sections.append(
            Section(
                name=name,
                title=title,
                scalars=tuple(scalars),
                tables=tuple(
                    _group_table(task, qualifier, members, group_order)
                    for (task, qualifier), members in sorted(
                        tables.items(), key=lambda kv: (_TASK_ORDER.get(kv[0][0], 2), kv[0][1])
                    )
                ),
                matrices=tuple(
                    _matrix(base, rq, cq, members, group_order)
                    for (base, rq, cq), members in matrices.items()
                ),
            )
        )
    return sections


def _group_table(
    task: str, qualifier: str, members: list[str], group_order: Mapping[str, Sequence[str]]
) -> GroupTable:
    columns: list[str] = []
    groups = []
    for key in members:  # already in display order
        base, qualifiers = families.split_key(key)
        if base not in columns:
            columns.append(base)
        groups.append(qualifiers[0][1])
    return GroupTable(
        task=task,
        qualifier=qualifier,
        groups=_ordered(groups, group_order.get(qualifier, ())),
        columns=tuple(columns),
        present=frozenset(members),
    )


def _matrix(
    base: str,
    row_qualifier: str,
    column_qualifier: str,
    members: list[str],
    group_order: Mapping[str, Sequence[str]],
) -> Matrix:
    rows, columns = [], []
    for key in members:
        _, ((_, row), (_, column)) = families.split_key(key)
        rows.append(row)
        columns.append(column)
    return Matrix(
        base=base,
        row_qualifier=row_qualifier,
        column_qualifier=column_qualifier,
        rows=_ordered(rows, group_order.get(row_qualifier, ())),
        columns=_ordered(columns, group_order.get(column_qualifier, ())),
        present=frozenset(members),
    )
