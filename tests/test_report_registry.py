"""The registry the report's data objects call their operations through."""

from __future__ import annotations

import importlib
import re

import pytest

import xcm_debias.report.render_html as render_html
from xcm_debias.report import registry


def test_every_operation_of_the_table_is_registered_by_the_module_it_names():
    rows = re.findall(r"``(\w+)``\s+``report/(\w+)\.py``", registry.__doc__ or "")
    assert len(rows) == 12
    for name, module in rows:
        assert registry.operation(name).__module__ == f"xcm_debias.report.{module}", name
    assert sorted(registry._OPERATIONS) == sorted(name for name, _ in rows)


def test_an_unknown_operation_names_the_known_ones():
    with pytest.raises(LookupError, match=r"name: expected a registered report operation.*'html'"):
        registry.operation("pdf")


def test_a_second_implementation_of_a_name_is_refused_but_a_reload_is_not():
    with pytest.raises(ValueError, match="operation 'html' is already implemented by xcm_debias"):
        registry.implements("html")(lambda before, after=None, labels=None: "")
    importlib.reload(render_html)  # registers the same function again
    assert registry.operation("html") is render_html.render_html
    with pytest.raises(ValueError, match="name: expected a non-empty operation name"):
        registry.implements("")
