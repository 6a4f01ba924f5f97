"""Re-implementations of the published reference algorithms, for benchmark 3 only.

Written from the published code's algorithm and data flow (dense similarity matrices, Python
loops over rows), not copied: ``invgc.py`` follows yimuwangcs/Better_Cross_Modal_Retrieval
``InvGC/InvGC.py``; ``dbnorm.py`` follows ``DBNorm/dbnorm.py`` of the same repository and
ioanacroi/qb-norm ``dynamic_inverted_softmax.py`` (with the paper's first normaliser input, as
``xcm_debias.scoring.DualInvertedSoftmax`` documents).
"""
