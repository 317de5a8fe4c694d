"""The task registry: the manifest's ``task`` -> the task's declaration (``tasks.base.Task``).

Adding a task is one folder (its data, metrics, estimator, strategies and a ``Task`` subclass)
and one line here. Entries are ``"module:attr"`` strings imported on first use, so that
``ronghe.load`` of a CRF or ONNX bundle imports only what that bundle needs.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Task, import_ref

DEFAULT = "text-classification"  # what --task defaults to
REGISTRY: dict[str, str | Task] = {
    "text-classification": "ronghe.tasks.text_classification:TASK",
    "token-classification": "ronghe.ner.task:TASK",
    "image-classification": "ronghe.images.task:TASK",
}


def register(task: Task) -> Task:
    """Add a task (e.g. a plug-in of your own) under ``task.name``."""
    REGISTRY[task.name] = task
    return task


def get(name: str) -> Task:
    """A task by its manifest name (``token-classification``) or CLI name (``ner``)."""
    if name not in REGISTRY:
        for key in list(REGISTRY):
            if get(key).cli_name == name:
                return get(key)
        raise ConfigError(f"unknown task '{name}'; --task takes one of: {', '.join(cli_names())}")
    entry = REGISTRY[name]
    if isinstance(entry, str):
        entry = REGISTRY[name] = import_ref(entry, f"task '{name}'")
    return entry


def cli_names() -> list[str]:
    return [get(k).cli_name for k in list(REGISTRY)]


def all_tasks() -> list[Task]:
    return [get(k) for k in list(REGISTRY)]


__all__ = ["REGISTRY", "Task", "all_tasks", "cli_names", "get", "register"]
