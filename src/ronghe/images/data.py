"""Labelled images: an image folder or a table of paths, read and checked before any training.

Two layouts:

* an **image folder**, one sub-folder per class (torchvision's ``ImageFolder`` convention):
  ``root/defect/001.png``, ``root/ok/002.jpg`` ... (files directly under ``root`` are an error:
  their class is unknown). Without labels (``labeled=False``) a folder's images are read
  recursively, for prediction;
* a **table** (CSV, TSV, Parquet, JSON, JSONL - whatever ``ronghe.data.read_table`` reads) with
  a path column (``path``/``image``/``file``/``filename``, relative to the table's folder or
  absolute), a label column, and optionally a text column and numeric/categorical feature columns
  beside it (a product photo + title + price).

Every image is decoded once while reading (``load_image``), so the problems are all reported
before training starts, each with its path: unreadable, truncated or zero-byte files, formats
Pillow does not read, and decompression bombs (more pixels than ``max_pixels``, Pillow's
``MAX_IMAGE_PIXELS`` by default: refused, never decoded). They are an error that lists them, or
with ``skip_bad_images=True`` they are left out and listed in ``bad`` (and the training report) -
never silently. Decoding converts every mode to RGB the same way at training and prediction:
EXIF orientation applied (``ImageOps.exif_transpose``), 16-bit and 32-bit greyscale scaled to
8 bits by their full range, palette and transparent images composited on white, CMYK and
YCbCr converted by Pillow, images over ``MAX_SIDE`` (2048) pixels box-downscaled. The read also records each file's SHA-256 (features are cached by
content, not by name), the class counts and the image sizes (``stats``).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
PATH_COLUMNS = ("path", "image", "image_path", "file", "filename", "filepath")
LABEL_COLUMNS = ("label", "class", "category", "target")
TEXT_COLUMNS = ("text", "title", "caption", "description")
TEXT_FEATURE = "__text__"  # the text column's name among the features a strategy predicts with
_MAX_LISTED = 10


@dataclass
class ImageSet:
    """Image files with their labels (or ``None``), optional text and feature columns, and
    provenance. ``rows[i]``: the 1-based table row (or the file's index in a folder)."""

    paths: list[str]
    labels: list | None
    texts: list[str] | None = None
    features: "object | None" = None  # pandas DataFrame of numeric/categorical columns
    source: str = "<list>"
    label_col: str | None = None
    rows: list[int] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) after EXIF
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) left out
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def inputs(self) -> list[str]:
        """What a model predicts on: the image paths."""
        return self.paths

    @property
    def model_features(self):
        """What travels beside the images to a strategy's ``predict_proba``: the feature columns
        and, when the table has a text column, the texts as column ``TEXT_FEATURE``."""
        if self.texts is None:
            return self.features
        import pandas as pd

        frame = (self.features.copy() if self.features is not None
                 else pd.DataFrame(index=range(len(self.paths))))
        frame[TEXT_FEATURE] = list(self.texts)
        return frame

    def subset(self, idx) -> "ImageSet":
        arr = np.asarray(idx)
        if arr.dtype == bool:
            arr = np.flatnonzero(arr)
        idx = [int(i) for i in arr.astype(int).reshape(-1)]

        def pick(xs):
            return None if xs is None else [xs[i] for i in idx]
        feats = None if self.features is None else self.features.iloc[idx].reset_index(drop=True)
        return ImageSet(paths=pick(self.paths), labels=pick(self.labels), texts=pick(self.texts),
                        features=feats, source=self.source, label_col=self.label_col,
                        rows=pick(self.rows) or [],
                        hashes=pick(self.hashes) or [], sizes=pick(self.sizes) or [],
                        bad=list(self.bad), notes=list(self.notes))

    @property
    def classes(self) -> list:
        if self.labels is None:
            raise DataError(f"{self.source} has no labels: give a labelled folder (one "
                            "sub-folder per class) or a table with a label column")
        return sorted(set(self.labels))

    def fingerprint(self) -> str:
        """SHA-256 over the images' contents and labels, in order (names do not count)."""
        h = hashlib.sha256()
        for i, digest in enumerate(self.hashes):
            h.update(digest.encode())
            h.update(b"\0" + str(self.labels[i] if self.labels else "").encode() + b"\n")
        return h.hexdigest()

    def stats(self) -> dict:
        """Class counts, image size statistics and what was left out - for the report."""
        out: dict = {"n_images": len(self), "n_bad": len(self.bad)}
        if self.labels is not None:
            out["class_counts"] = dict(sorted(Counter(map(str, self.labels)).items()))
        if self.sizes:
            w = np.array([s[0] for s in self.sizes])
            h = np.array([s[1] for s in self.sizes])
            out["width"] = {"min": int(w.min()), "median": float(np.median(w)), "max": int(w.max())}
            out["height"] = {"min": int(h.min()), "median": float(np.median(h)), "max": int(h.max())}
        if self.bad:
            out["bad"] = [{"path": p, "reason": r} for p, r in self.bad]
        return out


# --------------------------------------------------------------------------- decoding

def _scale_to_8bit(img):
    """16/32-bit greyscale (modes I;16*, I, F) -> L, by the image's own min-max range."""
    from PIL import Image

    a = np.asarray(img, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    if hi > lo:
        a = (a - lo) * (255.0 / (hi - lo))
    else:
        a = np.zeros_like(a)
    return Image.fromarray(np.round(a).astype(np.uint8), mode="L")


#: longer side of the working copy of an image: larger ones are box-downscaled by an integer
#: factor when decoded (at training, prediction and serving alike). Models look at a few hundred
#: pixels; this bounds the memory a queued image holds (2048 x 2048 RGB: 12.6 MB).
MAX_SIDE = 2048


def _cap(img):
    side = max(img.size)
    if side <= MAX_SIDE:
        return img
    size = img.size
    out = img.reduce(-(-side // MAX_SIDE))
    out.info["original_size"] = size
    return out


def to_rgb(img):
    """Any Pillow image -> RGB, the same way everywhere (training, prediction, serving); the
    longer side at most ``MAX_SIDE`` (``info["original_size"]`` keeps the size it had)."""
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        img = _scale_to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return _cap(img.convert("RGB") if img.mode != "RGB" else img)


class TooLarge(DataError):
    """An image over the pixel limit, or a decompression bomb: refused before it is decoded."""


class NotAnImage(DataError):
    """Bytes that are not an image in a format Pillow reads (or one of ``formats``)."""


def load_image(source, max_pixels: int | None = None, formats: tuple[str, ...] | None = None):
    """Decode a path, bytes or file object into an RGB ``PIL.Image``; ``DataError`` with the
    reason if it cannot be (the caller adds where it came from), ``TooLarge`` over
    ``max_pixels``. ``formats``: Pillow format names to accept (default: any it reads)."""
    import io

    from PIL import Image, UnidentifiedImageError

    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise DataError("the file is empty (0 bytes)")
        source = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)) and os.path.getsize(source) == 0:
        raise DataError("the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source, formats=list(formats) if formats else None) as img:
                w, h = img.size
                if limit and w * h > limit:
                    raise TooLarge(f"{w}x{h} = {w * h:,} pixels is more than the limit of "
                                    f"{limit:,} (a decompression bomb, or a scan far larger "
                                    f"than a model needs): downscale it, or raise max_pixels")
                img.load()
                return to_rgb(img)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise TooLarge(f"refused as a decompression bomb: {e}") from None
    except UnidentifiedImageError:
        raise NotAnImage("not an image "
                        + (f"in one of the accepted formats ({', '.join(formats)})" if formats
                           else "Pillow can read (supported: PNG, JPEG, BMP, TIFF, WebP, GIF)")
                        ) from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated, corrupt
        raise DataError(f"cannot be decoded ({e}): the file is truncated or corrupt") from None


# --------------------------------------------------------------------------- reading

def _folder_items(root: Path, labeled: bool) -> tuple[list[Path], list[str] | None]:
    def images(folder: Path, recursive: bool) -> list[Path]:
        it = folder.rglob("*") if recursive else folder.iterdir()
        return sorted(p for p in it if p.is_file() and p.suffix.lower() in EXTENSIONS
                      and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not labeled:
        return images(root, True), None
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    loose = images(root, False)
    if loose:
        raise DataError(f"{root}: {len(loose)} image(s) lie directly in the folder (e.g. "
                        f"{loose[0].name}), so their class is unknown. Move each into a sub-folder "
                        "named after its class (root/<class>/<image>), or give a table with a "
                        "path and a label column.")
    if not classes:
        raise DataError(f"{root}: no class sub-folders. An image folder has one sub-folder per "
                        "class (root/<class>/<image>)")
    paths, labels = [], []
    for d in classes:
        found = images(d, True)
        if not found:
            raise DataError(f"{d}: class folder '{d.name}' has no images (extensions: "
                            f"{', '.join(EXTENSIONS)}); remove it or add its images")
        paths += found
        labels += [d.name] * len(found)
    return paths, labels


def _table_items(path: Path, labeled: bool, path_col, label_col, text_col, feature_cols):
    from ..data import detect_column, read_table

    df = read_table(str(path))
    where = str(path)
    pcol = detect_column(df, path_col, PATH_COLUMNS, "path", where)
    lcol = detect_column(df, label_col, LABEL_COLUMNS, "label", where) if labeled else None
    if labeled is None:  # optional labels
        lcol = next((c for c in df.columns if str(c).lower() in LABEL_COLUMNS), None)
    tcol = text_col if text_col is not None else next(
        (c for c in df.columns if str(c).lower() in TEXT_COLUMNS), None)
    if tcol is not None and tcol not in df.columns:
        raise DataError(f"text column {tcol!r} not found in {where}; columns: {list(df.columns)}")
    missing = [c for c in (feature_cols or []) if c not in df.columns]
    if missing:
        raise DataError(f"feature column(s) {missing} not found in {where}; columns: "
                        f"{list(df.columns)}")
    base = path.parent
    paths, problems = [], []
    for row, value in enumerate(df[pcol].tolist(), start=2):
        if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
            problems.append(f"row {row}: empty {pcol!r}")
            paths.append(None)
            continue
        p = Path(str(value)).expanduser()
        paths.append(p if p.is_absolute() else base / p)
    labels = None
    if lcol is not None:
        labels = []
        for row, value in enumerate(df[lcol].tolist(), start=2):
            if value is None or (isinstance(value, float) and np.isnan(value)) \
                    or not str(value).strip():
                problems.append(f"row {row}: empty label in {lcol!r}")
            labels.append(value if not isinstance(value, float) or not value.is_integer()
                          else int(value))
    if problems:
        shown = "; ".join(problems[:_MAX_LISTED])
        raise DataError(f"{where}: {len(problems)} row(s) cannot be used: {shown}"
                        f"{' ...' if len(problems) > _MAX_LISTED else ''}. Fill them in or "
                        "remove the rows.")
    texts = None if tcol is None else ["" if v is None or (isinstance(v, float) and np.isnan(v))
                                       else str(v) for v in df[tcol].tolist()]
    feats = None
    if feature_cols:
        from ..data import _numeric_if_possible

        feats = df[list(feature_cols)].reset_index(drop=True)
        feats = feats.apply(_numeric_if_possible)
    return paths, labels, texts, feats, list(range(2, len(df) + 2)), lcol


def read(path, *, labeled: bool | None = True, path_col: str | None = None,
         label_col: str | None = None, text_col: str | None = None,
         feature_cols: list[str] | None = None, skip_bad_images: bool = False,
         max_pixels: int | None = None) -> ImageSet:
    """An image folder or a table of image paths as an ``ImageSet``, every image checked."""
    from ..log import info, progress, warn

    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    texts = feats = None
    if root.is_dir():
        files, labels = _folder_items(root, bool(labeled))
        rows = list(range(1, len(files) + 1))
        lcol = "<class sub-folder>" if labeled else None
    else:
        files, labels, texts, feats, rows, lcol = _table_items(root, labeled, path_col, label_col,
                                                         text_col, feature_cols)
    if not files:
        raise DataError(f"{root}: no images found (extensions: {', '.join(EXTENSIONS)})")
    keep, bad, hashes, sizes = [], [], [], []
    with progress("checking images", len(files)) as bar:
        for i, f in enumerate(files):
            try:
                if not f.is_file():
                    raise DataError("no such file")
                raw = f.read_bytes()
                img = load_image(raw, max_pixels)
            except DataError as e:
                bad.append((str(f), str(e)))
            except OSError as e:
                bad.append((str(f), f"cannot be read: {e.strerror or e}"))
            else:
                keep.append(i)
                hashes.append(hashlib.sha256(raw).hexdigest())
                sizes.append(img.info.get("original_size", img.size))
            bar.advance(1)
    if bad and not skip_bad_images:
        shown = "\n  ".join(f"{p}: {r}" for p, r in bad[:_MAX_LISTED])
        more = f"\n  ... and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
        raise DataError(f"{root}: {len(bad)} of {len(files)} images cannot be used:\n  {shown}"
                        f"{more}\nFix or remove them, or pass --skip-bad-images to leave them "
                        "out (they are listed in the training report).")
    if bad and len(keep) == 0:
        raise DataError(f"{root}: none of the {len(files)} images can be decoded: {bad[0][1]}")

    def pick(xs):
        return None if xs is None else [xs[i] for i in keep]
    ds = ImageSet(paths=[str(files[i]) for i in keep], labels=pick(labels), texts=pick(texts),
                  features=None if feats is None else feats.iloc[keep].reset_index(drop=True),
                  source=str(root), label_col=lcol, rows=[rows[i] for i in keep], hashes=hashes,
                  sizes=sizes, bad=bad)
    if bad:
        note = (f"left out {len(bad)} of {len(files)} images that cannot be used "
                f"(--skip-bad-images), e.g. {bad[0][0]}: {bad[0][1]}")
        warn("%s", note)
        ds.notes.append(note)
    info("read %d images from %s%s", len(ds), root,
         f" ({len(ds.classes)} classes)" if ds.labels is not None else "")
    return ds


def from_paths(paths, labels=None, *, max_pixels: int | None = None) -> ImageSet:
    """Files given one by one (predict on paths): every file must decode."""
    files = [Path(p).expanduser() for p in paths]
    hashes, sizes, bad = [], [], []
    for f in files:
        try:
            raw = f.read_bytes()
            img = load_image(raw, max_pixels)
        except DataError as e:
            bad.append(f"{f}: {e}")
            continue
        except OSError as e:
            bad.append(f"{f}: cannot be read: {e.strerror or e}")
            continue
        hashes.append(hashlib.sha256(raw).hexdigest())
        sizes.append(img.info.get("original_size", img.size))
    if bad:
        raise DataError(f"{len(bad)} of {len(files)} images cannot be used:\n  "
                        + "\n  ".join(bad[:_MAX_LISTED]))
    return ImageSet(paths=[str(f) for f in files], labels=None if labels is None else list(labels),
                    rows=list(range(1, len(files) + 1)), hashes=hashes, sizes=sizes)


def collect(patterns: list[str], max_pixels: int | None = None) -> ImageSet:
    """Files, folders (recursively) and globs -> one ``ImageSet`` of every image they name; a
    pattern that names nothing, or a file that does not decode, is an error naming it."""
    import glob

    files: list[Path] = []
    for pat in patterns:
        p = Path(pat).expanduser()
        if p.is_dir():
            found, _ = _folder_items(p, labeled=False)
        elif p.is_file():
            found = [p]
        elif glob.has_magic(str(pat)):
            found = sorted(Path(f) for f in glob.glob(str(p), recursive=True)
                           if Path(f).is_file() and Path(f).suffix.lower() in EXTENSIONS)
        else:
            raise DataError(f"{pat}: no such file or folder")
        if not found:
            raise DataError(f"{pat}: no images found (extensions: {', '.join(EXTENSIONS)})")
        files += found
    ds = from_paths(files, max_pixels=max_pixels)
    ds.source = ", ".join(patterns[:3]) + (" ..." if len(patterns) > 3 else "")
    return ds
