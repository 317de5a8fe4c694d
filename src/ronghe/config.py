"""Training configuration: pydantic models, and YAML/TOML config files.

Each strategy declares its own ``Config`` (a subclass of ``StrategyConfig``) next to its code, the
way PEFT pairs ``LoraConfig`` with the LoRA model: hyper-parameters and defaults live in one place
and are validated with messages that name the bad field. ``ronghe train --config run.yaml`` and the
CLI flags fill the same fields.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError


class StrategyConfig(BaseModel):
    """Fields every strategy has."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    seed: int = Field(0, description="seed for splits, initialisation and shuffling")
    valid_fraction: float = Field(0.1, gt=0, le=0.5,
                                  description="share of training data held out for validation "
                                              "when no validation file is given")


class EncoderConfig(StrategyConfig):
    """Fields of every strategy that runs a transformer backbone, whatever the task."""

    model: str = Field("minilm", description="alias, local HF folder or hub id")
    batch_size: int = Field(32, ge=1)
    max_length: int = Field(128, ge=8, le=4096, description="tokens per input (per window for "
                                                             "token tasks); longer are truncated")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:0 ...")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto = bf16 autocast where the hardware runs it fast (CPU with "
                            "AMX, CUDA with bf16), else fp32")


class NetworkConfig(EncoderConfig):
    """Fields of strategies that pool a text into one vector (text classification)."""

    pooling: Literal["mean", "cls"] = "mean"


class SelectionFields(BaseModel):
    """How a logistic-regression head chooses C (``linear.fit_logreg``'s ``selection``); mixed
    into the configs of the strategies that fit one (``frozen``, image ``classic``)."""

    selection: Literal["auto", "valid", "cv"] = Field("auto", description=(
        "how C is chosen: valid = validation macro-F1; cv = cross-validated log-loss over "
        "training + validation data (the model is still fitted on the training data); auto = "
        "cv when the validation set has under 500 examples and the data at most 10,000"))


REFIT_AUTO_MAX = 5000  # refit="auto" refits below this many examples


def auto_batch_size(n: int, largest: int = 32, smallest: int = 8, steps: int = 250) -> int:
    """The training batch when none is given: the largest of 32, 16 and 8 that still makes
    ``steps`` optimiser steps per epoch over ``n`` examples (8 below 4,000 examples, 16 below
    8,000). Small data sets otherwise get too few updates: at 2,000 examples and 2 epochs, 32 makes
    114 steps, 8 makes 450 (``benchmarks/finetune_small.py``)."""
    b = largest
    while b > smallest and n < b * steps:
        b //= 2
    return b


class TrainingFields(BaseModel):
    """What ``training.loop`` needs from a strategy that trains a network (mixed into the
    configs of finetune-like strategies of every task, so each knob is declared once)."""

    epochs: int = Field(3, ge=1, le=1000)
    learning_rate: float = Field(5e-5, gt=0, lt=1)
    head_learning_rate: float | None = Field(None, gt=0, lt=1,
                                             description="default: 10x learning_rate, at most 1e-3")
    layer_lr_decay: float = Field(1.0, gt=0, le=1, description="lr multiplier per layer going down")
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, ge=0, description="0 disables clipping")
    patience: int = Field(2, ge=1, description="epochs without a gain in the task's validation "
                                               "score (macro-F1, entity F1) before stopping")
    eval_batch_size: int = Field(128, ge=1)
    checkpoint_every: int = Field(0, ge=0, description="steps between checkpoints; 0 = each epoch")
    report_to: list[str] = Field(["tensorboard"], description="tensorboard, mlflow (with a run dir)")
    log_every: int = Field(10, ge=1, description="steps between metrics.csv rows")
    keep: Literal["best", "last"] = Field(
        "best", description="the weights kept at the end: the epoch with the best validation "
                            "score, or the last epoch's")
    refit: Literal["auto", "on", "off"] = Field(
        "off", description="after training on the automatic hold-out split, train again on "
                           f"all the data for the epoch count validation chose; auto = when "
                           f"the data has fewer than {REFIT_AUTO_MAX:,} examples (where the "
                           "held-out share costs most and a second run is cheap)")


def validate(cls: type[StrategyConfig], values: dict[str, Any], strategy: str) -> StrategyConfig:
    """Build a config, turning pydantic's errors into one readable ``ConfigError``."""
    try:
        return cls.model_validate(values)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "config"
            if err["type"] == "extra_forbidden":
                known = ", ".join(sorted(cls.model_fields))
                lines.append(f"option '{loc}' does not apply to strategy '{strategy}' "
                             f"(its options: {known})")
            else:
                lines.append(f"option '{loc}' = {err.get('input')!r}: {err['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML, TOML or JSON config file into a flat dict of option names to values."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    text = p.read_text()
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {p} must end in .yaml, .yml, .toml or .json")
    except ConfigError:
        raise
    except Exception as e:  # yaml.YAMLError, tomllib.TOMLDecodeError, JSONDecodeError
        raise ConfigError(f"cannot parse config file {p}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}
