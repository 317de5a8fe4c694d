"""``python -m ronghe``: the command line (``torchrun --nproc-per-node 2 -m ronghe train ...``)."""

from ronghe.cli import main

main()
