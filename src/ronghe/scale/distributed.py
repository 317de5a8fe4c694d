"""Data-parallel training: the one training loop (``training/loop.py``) on several processes.

The same ``ronghe train`` runs single-process, under ``torchrun`` and as a Ray Train worker:

* ``torchrun --nproc-per-node 2 -m ronghe train DATA --out B`` (machines without Ray): each
  process finds ``RANK``/``WORLD_SIZE`` in its environment and ``init_from_env`` joins the
  process group (gloo on CPU, nccl on GPU);
* ``ronghe train DATA --out B --engine ray --workers N [--address ...]``: ``train_on_ray`` starts a
  Ray Train ``TorchTrainer`` whose workers (process group set up by Ray) call the same command
  function; checkpoints go through Ray's storage path (``--storage``), so a restarted worker
  resumes from the last epoch; the bundle comes back as the run's final checkpoint.

What the loop does differently when ``world_size() > 1`` (all of it in this module's helpers):
the model's forward runs through ``DistributedDataParallel`` (gradients averaged across
processes); each global batch of ``batch_size`` inputs is cut into ``world_size`` per-process
batches and every process takes its own through ``DistributedSampler`` (so the effective batch,
the number of optimiser steps and the learning-rate schedule equal the single-process run's);
only rank 0 writes checkpoints, metrics and the bundle, and shows progress. Every process
evaluates the full validation set, so early stopping decides the same everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..training.callbacks import Callback


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def world_size() -> int:
    d = _dist()
    return d.get_world_size() if d else 1


def rank() -> int:
    d = _dist()
    return d.get_rank() if d else 0


def is_main() -> bool:
    return rank() == 0


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1); no-op
    for a single process or when already joined (Ray Train). True when distributed."""
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return True


def local_batch(batch_size: int) -> int:
    """Each process's share of the global batch."""
    n = world_size()
    if n > 1 and batch_size % n:
        raise ConfigError(f"batch_size {batch_size} does not split over {n} workers: give a "
                          f"multiple of {n} (it is the effective batch of all workers together)")
    return batch_size // n


def steps(n_examples: int, batch_size: int) -> int:
    """Optimiser steps per epoch: one per global batch, as in a single process."""
    import math

    local_batch(batch_size)  # refuses a batch that does not split over the processes
    return max(1, math.ceil(n_examples / batch_size))


def shard(batches: list[list[int]]) -> list[list[int]]:
    """This process's part of each global batch (the batches, their order and composition, are
    the single-process run's: the same seeded order on every process): ``DistributedSampler``
    over the batch's examples, unshuffled - every ``world_size``-th one, a short last batch
    padded by repetition so that every process takes the same number of steps. DDP's mean of
    the processes' gradients is then the single-process gradient of the whole batch."""
    if world_size() == 1:
        return batches
    from torch.utils.data.distributed import DistributedSampler

    return [[b[i] for i in DistributedSampler(b, num_replicas=world_size(), rank=rank(),
                                              shuffle=False)] for b in batches]


def wrap(model):
    """The module the loop calls forward on: ``DistributedDataParallel`` around ``model`` when
    distributed (``find_unused_parameters``: frozen or skipped parts - a pooler - are fine)."""
    if world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, find_unused_parameters=True)


def seed_offset() -> int:
    """Added to the torch seed after the model is built: the processes draw different dropout
    masks (the model's initial weights are rank 0's, broadcast by DDP)."""
    return rank()


# --------------------------------------------------------------------------- Ray Train


class RayReport(Callback):
    """Under Ray Train, after each epoch: report the epoch's metrics, with rank 0's latest
    checkpoint folder (Ray copies it to the run's storage path, so a restarted run resumes
    there; it is the one written at the end of the previous epoch)."""

    def on_epoch_end(self, loop, row):
        import ray.train

        ckpt = None
        if is_main() and loop.run_dir is not None and (loop.run_dir / "checkpoint").exists():
            ckpt = ray.train.Checkpoint.from_directory(str(loop.run_dir / "checkpoint"))
        ray.train.report({k: v for k, v in row.items() if isinstance(v, (int, float))},
                         checkpoint=ckpt)


def in_ray_train() -> bool:
    try:
        import ray.train

        return ray.train.get_context() is not None and world_size() > 1
    except Exception:  # noqa: BLE001 - not inside a Ray Train worker
        return False


def _worker(config: dict) -> None:
    """What each Ray Train worker runs: restore the last reported checkpoint (a restarted run),
    then the ``train`` command function with a local output, and report the bundle."""
    import shutil
    import tempfile

    import ray.train

    fn, kwargs = config["fn"], dict(config["kwargs"])
    work = Path(tempfile.mkdtemp(prefix="ronghe-train-"))
    kwargs["out"] = work / "bundle"
    kwargs["run_dir"] = work / "run"
    try:
        restored = ray.train.get_checkpoint()
        if restored is not None:  # a failed worker's run starts again from its last epoch
            with restored.as_directory() as folder:
                shutil.copytree(folder, work / "run" / "checkpoint")
            kwargs["resume"] = True
        fn(**kwargs)
        if is_main():  # report copies the bundle into the run's storage before it returns
            ray.train.report({"done": 1}, checkpoint=ray.train.Checkpoint.from_directory(
                str(work / "bundle")))
        else:
            ray.train.report({"done": 1})
    finally:  # the worker's scratch copy (bundle, run folder) is not left in /tmp
        shutil.rmtree(work, ignore_errors=True)


def train_on_ray(fn: Callable[..., Any], kwargs: dict, *, workers: int, out: Path,
                 address: str | None = None, storage: str | None = None,
                 max_failures: int = 1) -> Path:
    """Run ``fn(**kwargs)`` (the ``train`` command function) on ``workers`` Ray Train workers and
    copy the bundle rank 0 saved to ``out``."""
    import shutil

    from .batch import connect

    connect(address)
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    import torch

    storage = storage or str(Path(str(out).rstrip("/") + ".ray").resolve())
    trainer = TorchTrainer(
        _worker, train_loop_config={"fn": fn, "kwargs": kwargs},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=torch.cuda.is_available()),
        run_config=RunConfig(name="ronghe-train", storage_path=storage,
                             failure_config=FailureConfig(max_failures=max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)))
    result = trainer.fit()
    if result.checkpoint is None:
        raise ConfigError(f"the Ray run in {storage} ended without a bundle: see its logs")
    from ..bundle import check_target, swap_into_place

    check_target(out)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-ray"
    shutil.rmtree(tmp, ignore_errors=True)
    with result.checkpoint.as_directory() as folder:
        shutil.copytree(folder, tmp)
    return swap_into_place(tmp, out)
