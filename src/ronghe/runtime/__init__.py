"""Inference backends. The torch backend is each strategy's own model; ``onnx.py`` runs an
exported model with onnxruntime and the ``tokenizers`` library only (no torch, no transformers),
so a bundle exported with ``ronghe export --format onnx`` loads on a lean ``ronghe[onnx]`` install."""
