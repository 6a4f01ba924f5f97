"""Calibration machinery: item folds, cross-fitting, out-of-fold evaluation and the recall guard.

Everything that decides *from calibration data alone* lives here, so ``Chain``, ``Debiased``
and ``recommended`` share one implementation:

* :mod:`~xcm_debias.calibration.folds` — item folds and the out-of-fold transform loop;
* :mod:`~xcm_debias.calibration.crossfit` — fitting score stages in order, cross-fitted;
* :mod:`~xcm_debias.calibration.evaluation` — out-of-fold top-1 records and their metrics;
* :mod:`~xcm_debias.calibration.guard` — the recall guard: candidate configurations scored
  out-of-fold, the admissible ones kept, the least biased chosen.

The package ``__init__`` imports nothing, so low layers (``processors``) can use ``folds``
without importing the layers above them.
"""
