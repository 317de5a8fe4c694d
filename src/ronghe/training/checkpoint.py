"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a folder ``<run_dir>/checkpoint`` holding the model weights, the optimizer moments,
the best weights so far, and ``state.json`` (position in training, scheduler, RNG states,
history). It is written to a temporary folder and renamed, so a kill during the write leaves the
previous checkpoint intact. Resuming restores all of it, so the resumed run takes the same steps the
uninterrupted run would have.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from ..bundle import json_default, swap_into_place
from ..errors import ConfigError

NAME = "checkpoint"


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save(run_dir: Path, *, model, optimizer, scheduler, best_state: dict | None,
         position: dict[str, Any], epoch_rng_state: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{NAME}.tmp-{uuid.uuid4().hex[:6]}"
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"), force_contiguous=True)  # tied weights once
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    save_file(opt_tensors or {"_empty": torch.zeros(1)}, str(tmp / "optimizer.safetensors"))
    if best_state is not None:
        save_file({k: v.contiguous() for k, v in best_state.items()}, str(tmp / "best.safetensors"))
    save_file({"torch_rng": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    py_state = random.getstate()
    state = {"position": position, "optimizer": opt_meta, "scheduler": scheduler.state_dict(),
             "epoch_rng": epoch_rng_state, "python_rng": [py_state[0], list(py_state[1]), py_state[2]],
             "has_best": best_state is not None}
    (tmp / "state.json").write_text(json.dumps(state, default=json_default))
    return swap_into_place(tmp, run_dir / NAME)


def exists(run_dir: Path | None) -> bool:
    return run_dir is not None and (Path(run_dir) / NAME / "state.json").exists()


def load(run_dir: Path, *, model, optimizer, scheduler) -> tuple[dict, dict, dict | None]:
    """Restore model, optimizer, scheduler and RNGs; return (position, epoch_rng_state, best)."""
    folder = Path(run_dir) / NAME
    if not (folder / "state.json").exists():
        raise ConfigError(f"--resume: no checkpoint in {folder}; start without --resume")
    state = json.loads((folder / "state.json").read_text())
    load_model(model, str(folder / "model.safetensors"))
    opt = load_file(str(folder / "optimizer.safetensors"))
    opt.pop("_empty", None)
    _restore_optimizer(optimizer, opt, state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(load_file(str(folder / "rng.safetensors"))["torch_rng"])
    v, internal, gauss = state["python_rng"]
    random.setstate((v, tuple(internal), gauss))
    best = load_file(str(folder / "best.safetensors")) if state["has_best"] else None
    return state["position"], state["epoch_rng"], best
