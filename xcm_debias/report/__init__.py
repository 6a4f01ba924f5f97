"""Before/after bias reports."""

from __future__ import annotations

from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.comparison import Comparison, MetricDelta

__all__ = ["BiasReport", "Comparison", "MetricDelta"]
