"""Training a network: the loop (``loop.py``) and what plugs into it."""
