"""Make a fitted model smaller and faster without silently losing accuracy.

``export.py`` (ONNX with a parity check), ``quantize.py`` (onnxruntime int8 dynamic/static, torch
bf16), ``prune.py`` (magnitude pruning, dropping attention heads or whole layers, each followed by
a short recovery fine-tune), ``distill.py`` (a teacher's knowledge in a smaller transformer or a
classic model), ``surgery.py`` (layer and head removal shared by the two), and ``gate.py``: every compression is evaluated before and after on
validation data, and the result is written only if it lost at most ``max_drop`` points.
"""
