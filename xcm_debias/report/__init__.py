"""Before/after bias reports."""

from __future__ import annotations

from xcm_debias.report.bias_report import BiasReport

__all__ = ["BiasReport"]
