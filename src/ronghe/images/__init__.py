"""Image classification: reading and checking labelled images (``data.py``), preprocessing
(``preprocess.py``), the estimator (``estimator.py``), the strategies (``classic.py``,
``frozen.py``) and the task's declaration (``task.py``)."""

from . import data

__all__ = ["data"]
