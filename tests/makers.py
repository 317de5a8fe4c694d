"""Test data and helpers made in the tests, importable by a name of their own (``from makers
import make_sentiment``): ``conftest`` is a name every test folder's conftest module shares, so
importing from it returns whichever folder's conftest pytest loaded last."""

from __future__ import annotations

import random

import pandas as pd

POS = ["a wonderful, moving film", "great acting and a clever script", "i loved every minute",
       "funny, warm and beautifully shot", "a delight from start to finish", "brilliant and touching",
       "the best movie of the year", "superb performances all round", "charming and smart",
       "an excellent, gripping story", "truly enjoyable and fresh", "a joyful, inventive ride"]
NEG = ["a dull, lifeless mess", "boring and far too long", "i hated the clumsy dialogue",
       "the plot makes no sense at all", "a tedious waste of time", "awful acting, weak script",
       "the worst film this year", "painfully slow and predictable", "flat, tired and ugly",
       "a noisy, pointless sequel", "terrible jokes that never land", "bland and forgettable"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now (for a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_sentiment(n_per_class: int = 24, seed: int = 0) -> pd.DataFrame:
    """Short synthetic reviews: positive/negative templates with varied fillers."""
    rng = random.Random(seed)
    fillers = ["", " overall", " honestly", " in the end", " for me", " really", " again"]
    rows = []
    for label, pool in (("pos", POS), ("neg", NEG)):
        for i in range(n_per_class):
            rows.append({"text": pool[i % len(pool)] + rng.choice(fillers) + f" ({i})", "label": label})
    rng.shuffle(rows)
    return pd.DataFrame(rows)


BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers', 'peft'):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Block())
"""


def run_without_torch(code: str):
    """Run ``code`` in a fresh interpreter where torch, transformers and peft cannot be imported,
    as on a lean ``pip install 'ronghe[onnx]'``."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True,
                          text=True)


def make_layout(root, n_per_class: int = 16, seed: int = 0, size: int = 64):
    """An image folder where only position tells the classes apart: the same kind of bright
    square (random size, colour and place within its quarter) in the top-left, top-right,
    bottom-left or bottom-right quarter of dark noise, away from the border - globally pooled
    features of a convolutional network barely see the difference, a grid of cells does."""
    from pathlib import Path

    import numpy as np
    from PIL import Image, ImageDraw

    root = Path(root)
    rng = np.random.default_rng(seed)
    q = size // 2
    for cls, (qx, qy) in {"top-left": (0, 0), "top-right": (1, 0), "bottom-left": (0, 1),
                          "bottom-right": (1, 1)}.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            img = Image.fromarray(rng.integers(0, 70, (size, size, 3), dtype=np.uint8))
            s = int(rng.integers(q // 4, q // 2))
            x, y = (qx * q + q // 8 + int(rng.integers(0, q - q // 4 - s + 1)),
                    qy * q + q // 8 + int(rng.integers(0, q - q // 4 - s + 1)))
            col = tuple(int(v) for v in rng.integers(140, 256, 3))
            ImageDraw.Draw(img).rectangle([x, y, x + s, y + s], fill=col)
            img.save(root / cls / f"{seed}-{i}.png")
    return root


def make_shapes(root, n_per_class: int = 12, seed: int = 0, size: int = 40):
    """An image folder of coloured shapes on dark noise: circle / square / triangle, varied in
    position, size and colour (classic features and pretrained backbones both separate them)."""
    from pathlib import Path

    import numpy as np
    from PIL import Image, ImageDraw

    root = Path(root)
    rng = np.random.default_rng(seed)
    for cls in ("circle", "square", "triangle"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            noise = rng.integers(0, 70, (size, size, 3), dtype=np.uint8)
            img = Image.fromarray(noise)
            d = ImageDraw.Draw(img)
            s = int(rng.integers(size // 2, size - 8))
            x, y = (int(v) for v in rng.integers(2, size - s - 2, 2))
            col = tuple(int(v) for v in rng.integers(140, 256, 3))
            if cls == "circle":
                d.ellipse([x, y, x + s, y + s], fill=col)
            elif cls == "square":
                d.rectangle([x, y, x + s, y + s], fill=col)
            else:
                d.polygon([(x, y + s), (x + s, y + s), (x + s // 2, y)], fill=col)
            img.save(root / cls / f"{seed}-{i}.png")
    return root


BANKING = ["my card has not arrived yet", "how do i transfer money abroad", "what is my balance",
           "i lost my card please block it", "why was i charged a fee", "top up my account",
           "change my pin number", "the atm kept my card", "cancel a pending payment",
           "how long does a transfer take", "verify my identity", "exchange rate for euros"]


def banking_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Off-domain texts for drift tests: short banking requests, numbered."""
    rng = random.Random(seed)
    tail = ["", " please", " today", " asap", " thanks", " now"]
    return pd.DataFrame({"text": [rng.choice(BANKING) + rng.choice(tail) + f" #{i}"
                                  for i in range(n)]})
