"""Image classification (issue 14): reading and checking labelled images (``data.py``)."""
