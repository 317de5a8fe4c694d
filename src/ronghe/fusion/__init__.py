"""Strategies built from other strategies: late fusion (``weighted``), feature fusion
(``concat``), ``stack``ing, ``vote``s over saved bundles, and distillation (``distill.py``).

They register in ``ronghe.strategies`` like any other strategy and save their members as
sub-bundles (``members/<name>/``) whose manifests are checksummed by the parent's.
"""
