"""Strategies built from other strategies: late fusion (``weighted``), feature fusion
(``concat``), ``stack``ing and ``vote``s over saved bundles. (Distillation, which makes a model smaller, lives
in ``compression/distill.py``.)

They register in ``ronghe.strategies`` like any other strategy and save their members as
sub-bundles (``members/<name>/``) whose manifests are checksummed by the parent's.
"""
