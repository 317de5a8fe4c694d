"""The contact sheet of an image evaluation: the most confident mistakes as a grid of
thumbnails, each captioned with its true and predicted label, the score and the file name."""

from __future__ import annotations

from pathlib import Path


def contact_sheet(mistakes: list[dict], path: Path, title: str, cols: int = 6,
                  thumb: int = 160) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..errors import DataError
    from .data import load_image

    n = len(mistakes)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.2, rows * 2.6 + 0.6), dpi=100,
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, m in zip(axes.ravel(), mistakes):
        try:
            img = load_image(Path(m["path"]))
            img.thumbnail((thumb, thumb))
            ax.imshow(img, interpolation="nearest" if max(img.size) < thumb else "antialiased")
        except (DataError, OSError):
            ax.text(0.5, 0.5, "(unreadable now)", ha="center", va="center", fontsize=8)
        ax.set_title(f"true {m['true']}\npred {m['predicted']} ({m['score']:.2f})", fontsize=8,
                     color="#b00020")
        where = Path(m["path"])
        ax.text(0.5, -0.06, f"{where.parent.name}/{where.name}"[-32:], transform=ax.transAxes,
                ha="center",
                va="top", fontsize=6, color="#555555")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
