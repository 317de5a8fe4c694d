"""Scaling out: batch prediction over files of any size (``stream``: one machine; ``batch``:
Ray Data), data-parallel training (``distributed``: torchrun or Ray Train, one train function),
parallel hyper-parameter search (``tune``: Ray Tune) and elastic serving (``serve``: Ray Serve).

Ray is optional (``pip install 'ronghe[ray]'``): nothing here imports it until a ``--engine ray``
command runs, and the single-machine paths never do.
"""
