"""Calibration machinery: what a pipeline learns from its calibration set alone (label models).

The package ``__init__`` imports nothing, so low layers can use its modules without importing
the layers above them.
"""
