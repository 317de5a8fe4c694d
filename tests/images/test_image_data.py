"""Reading labelled images: folder and table layouts, every mode converted the same way, bad
files reported with their paths (or left out and listed), decompression bombs refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ronghe.errors import DataError
from ronghe.images.data import load_image, read, to_rgb


def _square(colour, size=(24, 16)):
    return Image.new("RGB", size, colour)


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "imgs"
    for cls, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            _square(colour).save(root / cls / f"{i}.png")
    return root


def test_folder_layout_labels_hashes_and_stats(folder):
    ds = read(folder)
    assert len(ds) == 6 and ds.classes == ["blue", "red"]
    assert ds.labels == ["blue"] * 3 + ["red"] * 3
    assert len(set(ds.hashes)) == 2  # identical pictures share a content hash
    st = ds.stats()
    assert st["class_counts"] == {"blue": 3, "red": 3}
    assert st["width"] == {"min": 24, "median": 24.0, "max": 24} and st["height"]["max"] == 16
    train, valid = __import__("ronghe").data.split(ds, 0.34, 0)
    assert len(train) + len(valid) == 6 and set(valid.labels) == {"blue", "red"}


def test_bad_files_are_listed_or_skipped_never_silently(folder):
    (folder / "red" / "empty.png").write_bytes(b"")
    (folder / "red" / "notes.jpg").write_bytes(b"this is not a jpeg")
    buf = io.BytesIO()
    _square((1, 2, 3), (64, 64)).save(buf, format="PNG")
    (folder / "blue" / "cut.png").write_bytes(buf.getvalue()[:60])  # truncated
    with pytest.raises(DataError) as e:
        read(folder)
    msg = str(e.value)
    assert "3 of 9 images cannot be used" in msg and "--skip-bad-images" in msg
    for name, why in (("empty.png", "empty"), ("notes.jpg", "not an image"),
                      ("cut.png", "truncated")):
        assert name in msg and why in msg
    ds = read(folder, skip_bad_images=True)
    assert len(ds) == 6 and len(ds.bad) == 3
    assert {Path(p).name for p, _ in ds.stats()["bad"] and ds.bad} == {"empty.png", "notes.jpg",
                                                                        "cut.png"}
    assert any("left out 3 of 9" in n for n in ds.notes)


def test_loose_files_and_empty_class_folders_are_errors(tmp_path, folder):
    _square((0, 0, 0)).save(folder / "loose.png")
    with pytest.raises(DataError, match="directly in the folder"):
        read(folder)
    (folder / "loose.png").unlink()
    (folder / "green").mkdir()
    with pytest.raises(DataError, match="'green' has no images"):
        read(folder)
    unlabeled = read(folder, labeled=False)
    assert unlabeled.labels is None and len(unlabeled) == 6


def test_modes_are_converted_to_rgb():
    grey = Image.new("L", (4, 4), 128)
    assert to_rgb(grey).getpixel((0, 0)) == (128, 128, 128)
    sixteen = Image.fromarray(np.array([[0, 1000], [3000, 65535]], dtype=np.uint16))
    buf = io.BytesIO()
    sixteen.save(buf, format="PNG")
    rgb = load_image(buf.getvalue())
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (0, 0, 0)
    assert rgb.getpixel((1, 1)) == (255, 255, 255)  # full range, not clipped at 255
    assert 0 < rgb.getpixel((1, 0))[0] < 20
    rgba = Image.new("RGBA", (2, 2), (255, 0, 0, 0))  # fully transparent red -> white
    assert to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)
    pal = Image.new("P", (2, 2), 3)
    pal.putpalette([0, 0, 0] * 3 + [10, 200, 30] + [0, 0, 0] * 252)
    assert to_rgb(pal).getpixel((0, 0)) == (10, 200, 30)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert Image.open(tmp_path / "r.jpg").size == (40, 20)
    assert load_image(tmp_path / "r.jpg").size == (20, 40)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    big = Image.new("1", (9600, 9600))  # 92 M pixels, over Pillow's 89 M default
    big.save(tmp_path / "bomb.png")
    with pytest.raises(DataError, match="decompression bomb"):
        load_image(tmp_path / "bomb.png")
    with pytest.raises(DataError, match="more than the limit of 100"):
        load_image(_png((20, 20)), max_pixels=100)


def _png(size):
    buf = io.BytesIO()
    _square((5, 5, 5), size).save(buf, format="PNG")
    return buf.getvalue()


def test_table_layout_with_text_and_features(tmp_path, folder):
    import pandas as pd

    rows = [{"image": f"imgs/{c}/{i}.png", "label": c, "title": f"{c} thing {i}",
             "price": float(i)} for c in ("red", "blue") for i in range(3)]
    pd.DataFrame(rows).to_csv(tmp_path / "items.csv", index=False)
    ds = read(tmp_path / "items.csv", feature_cols=["price"])
    assert len(ds) == 6 and ds.texts[0] == "red thing 0" and list(ds.features["price"])[:2] == [0, 1]
    assert ds.rows[0] == 2  # the CSV's data row, for messages
    rows[1]["image"] = "imgs/red/missing.png"
    rows[2]["label"] = None
    pd.DataFrame(rows).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="row 4: empty label"):
        read(tmp_path / "bad.csv")
    rows[2]["label"] = "red"
    pd.DataFrame(rows).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="missing.png: no such file"):
        read(tmp_path / "bad.csv")


def test_large_images_get_a_bounded_working_copy_everywhere(tmp_path):
    """A 5000 x 1200 scan is box-downscaled by an integer factor (3) when decoded - the same in
    reading, prediction and serving - while the report keeps its real size."""
    from PIL import Image

    from ronghe.images import data
    from ronghe.images.estimator import decode
    from ronghe.images.task import ServingModel

    big = Image.new("RGB", (5000, 1200), (200, 10, 10))
    (tmp_path / "a").mkdir()
    big.save(tmp_path / "a" / "scan.png")
    small = Image.new("RGB", (300, 200), (1, 2, 3))
    small.save(tmp_path / "a" / "small.png")
    ds = data.read(tmp_path)
    assert sorted(ds.sizes) == [(300, 200), (5000, 1200)]
    path = str(tmp_path / "a" / "scan.png")
    a = decode([path])[0]
    assert a.size == (1667, 400) and max(a.size) <= data.MAX_SIDE
    assert decode([big])[0].size == a.size  # a PIL image given directly: the same copy
    raw = (tmp_path / "a" / "scan.png").read_bytes()
    assert ServingModel.prepare([raw])[0].size == a.size
    assert decode([str(tmp_path / "a" / "small.png")])[0].size == (300, 200)
