"""What precision 'auto' resolves to, and the RONGHE_AUTO_PRECISION override."""

from __future__ import annotations

import pytest
import torch

from ronghe import modeling
from ronghe.errors import ConfigError

CPU = torch.device("cpu")


def test_auto_follows_the_hardware_unless_overridden(monkeypatch):
    monkeypatch.delenv(modeling.AUTO_ENV, raising=False)
    monkeypatch.setattr(modeling, "bf16_supported", lambda device: True)  # an AMX CPU
    assert modeling.autocast_dtype("auto", CPU) is torch.bfloat16
    assert modeling.autocast_dtype("fp32", CPU) is None
    monkeypatch.setenv(modeling.AUTO_ENV, "fp32")
    assert modeling.autocast_dtype("auto", CPU) is None
    monkeypatch.setattr(modeling, "bf16_supported", lambda device: False)
    monkeypatch.setenv(modeling.AUTO_ENV, "bf16")
    assert modeling.autocast_dtype("auto", CPU) is torch.bfloat16
    assert modeling.autocast_dtype("fp32", CPU) is None  # an explicit choice always wins


def test_a_wrong_override_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(modeling.AUTO_ENV, "fp16")
    with pytest.raises(ConfigError, match="RONGHE_AUTO_PRECISION='fp16': use fp32 or bf16"):
        modeling.autocast_dtype("auto", CPU)
