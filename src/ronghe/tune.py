"""Hyper-parameter search with Optuna: TPE sampling, median pruning on validation, resumable.

``tune(...)`` runs trials of one strategy on fixed train/validation data (every trial is scored on
the same validation set), reports the task's validation score (macro-F1; NER: entity F1) after each
epoch so the median pruner can
stop unpromising trials early, stores the study in SQLite (run it again with the same
``study_dir`` to add trials to it), and writes ``best.yaml`` - a config file that
``ronghe train --config best.yaml --out DIR`` trains directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from . import tasks
from .errors import ConfigError
from .log import info
from .training.callbacks import Callback


def _network(trial) -> dict:
    return {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 2e-4, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [16, 32]),
            "weight_decay": trial.suggest_categorical("weight_decay", [0.0, 0.01, 0.1]),
            "warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, 0.2),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3)}


def _peft(trial) -> dict:
    return {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [16, 32])}


TEXT_SPACES: dict[str, Callable[[Any], dict]] = {
    "classic": lambda t: {"C_grid": [t.suggest_float("C", 0.1, 100, log=True)],
                          "max_features": t.suggest_categorical("max_features", [50_000, 200_000]),
                          "char_ngrams": t.suggest_categorical("char_ngrams", ["2-5", "none"])},
    "frozen": lambda t: {"C_grid": [t.suggest_float("C", 0.003, 30, log=True)],
                         "pooling": t.suggest_categorical("pooling", ["mean", "cls"])},
    "finetune": _network,
    "lora": lambda t: {**_peft(t), "r": t.suggest_categorical("r", [4, 8, 16])},
    "adalora": _peft,
    "ia3": _peft,
    "prefix": lambda t: {**_peft(t), "num_virtual_tokens": t.suggest_categorical(
        "num_virtual_tokens", [8, 16, 32])},
    "contrastive": lambda t: {"learning_rate": t.suggest_float("learning_rate", 1e-5, 1e-4, log=True),
                              "num_iterations": t.suggest_categorical("num_iterations", [5, 10, 20])},
}
NER_SPACES: dict[str, Callable[[Any], dict]] = {
    "classic": lambda t: {"c1": [t.suggest_float("c1", 0.01, 1.0, log=True)],
                          "c2": [t.suggest_float("c2", 0.001, 0.5, log=True)]},
    "finetune": lambda t: {**_network(t), "crf_lr_scale": t.suggest_categorical(
        "crf_lr_scale", [10.0, 100.0])},
    "lora": lambda t: {**_peft(t), "r": t.suggest_categorical("r", [4, 8, 16])},
}
# task -> strategy -> search space
SEARCH_SPACES: dict[str, dict[str, Callable[[Any], dict]]] = {
    "text-classification": TEXT_SPACES, "token-classification": NER_SPACES}


def _decode(params: dict) -> dict:
    """Optuna stores categorical choices as simple values; map them back to config values."""
    out = dict(params)
    if "char_ngrams" in out:
        out["char_ngrams"] = None if out["char_ngrams"] == "none" else tuple(
            int(x) for x in out["char_ngrams"].split("-"))
    return out


class PruningCallback(Callback):
    def __init__(self, trial):
        self.trial = trial

    def on_epoch_end(self, loop, row):
        import optuna

        self.trial.report(row[f"valid_{loop.cfg.monitor}"], row["epoch"])
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {row['epoch']}")


class Problem:
    """What a study searches: one strategy of a task on fixed train/validation data. Shared by
    the Optuna loop here and the Ray Tune trials (``scale/tune.py``): the search space, a trial's
    config and its fit/score are defined once."""

    def __init__(self, train, *, strategy: str, task: str = "text-classification", valid=None,
                 base: dict | None = None, seed: int = 0):
        self.spec = spec = tasks.get(task)
        spaces = SEARCH_SPACES.get(spec.name, {})
        if strategy not in spaces:
            raise ConfigError(f"no search space for {spec.cli_name} strategy '{strategy}'; "
                              f"tunable: {', '.join(spaces) or 'none'}")
        self.strategy, self.base = strategy, dict(base or {})
        est_cls = spec.estimator_class()
        probe = est_cls(strategy=strategy, options=self.base or None)
        train = probe._as_data(train, role="training data")
        probe._check_train(train, probe.strategy_class())
        if valid is None:
            train, valid = spec.split(train, self.base.get("valid_fraction", 0.1), seed)
        else:
            valid = probe._as_data(valid, role="validation data")
            probe._check_valid(train, valid)
        self.train, self.valid = train, valid

    @property
    def space(self) -> Callable[[Any], dict]:
        return SEARCH_SPACES[self.spec.name][self.strategy]

    @property
    def study_name(self) -> str:
        # text studies keep the name they had before tasks, so a study_dir can be continued
        return (f"ronghe-{self.strategy}" if self.spec.name == tasks.DEFAULT else
                f"ronghe-{self.spec.cli_name}-{self.strategy}")

    def options(self, trial) -> dict:
        """The estimator options of a trial (an Optuna trial, or ``FixedTrial(params)``)."""
        return {**self.base, **_decode(self.space(trial))}

    def fit(self, options: dict, callbacks: list) -> tuple[float, dict]:
        """Train one trial; its validation score and the summary to keep with it."""
        clf = self.spec.estimator_class()(strategy=self.strategy, options=options)
        clf.fit(self.train, valid=self.valid, callbacks=callbacks)
        attrs = {key: clf.metrics_["valid"][key] for key in self.spec.summary}
        attrs["train_seconds"] = round(clf.train_seconds_, 2)
        return clf.metrics_["valid"][self.spec.score], attrs

    def write_best(self, study_dir: Path, params: dict, data_paths: dict | None, *, trials: int,
                   value: float, number, source) -> Path:
        """``study_dir/best.yaml``: the best trial's config, trainable by ``ronghe train
        --config``."""
        import optuna

        best = {"strategy": self.strategy, **(data_paths or {}),
                **self.options(optuna.trial.FixedTrial(params))}
        path = Path(study_dir) / "best.yaml"
        _write_yaml(path, best, trials=trials, value=value, number=number, source=source,
                    score=self.spec.score)
        return path


def tune(train, *, strategy: str, study_dir: Path, task: str = "text-classification",
         trials: int = 20, timeout: float | None = None, valid=None, base: dict | None = None,
         seed: int = 0, data_paths: dict | None = None):
    """Run (or continue) a study of one strategy of a task; return it. Writes
    ``study_dir/best.yaml``. Trials are scored by the task's validation score."""
    optuna = require_optuna()
    problem = Problem(train, strategy=strategy, task=task, valid=valid, base=base, seed=seed)
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(study_dir / 'study.db').resolve()}"
    study = optuna.create_study(
        study_name=problem.study_name, storage=storage, load_if_exists=True, direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))

    def objective(trial) -> float:
        score, attrs = problem.fit(problem.options(trial), [PruningCallback(trial)])
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return score

    done = len([t for t in study.trials if t.state.is_finished()])
    info("study %s: %d trials so far, running %d more", storage, done, trials)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=trials, timeout=timeout, catch=())
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ConfigError("no trial completed; raise --timeout or --trials")
    problem.write_best(study_dir, study.best_params, data_paths, trials=len(study.trials),
                       value=study.best_value, number=study.best_trial.number,
                       source=study_dir / "study.db")
    return study


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("ronghe tune needs optuna: pip install optuna") from None
    return optuna


def _write_yaml(path: Path, config: dict, *, trials: int, value: float, number, source,
                score: str = "macro_f1") -> None:
    import yaml

    header = (f"# best of {trials} trials in {source}: validation "
              f"{score.replace('macro_f1', 'macro-F1')} {value:.4f} (trial {number})\n"
              "# train it: ronghe train --config best.yaml --out DIR\n")
    clean = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(header + yaml.safe_dump(clean, sort_keys=False, allow_unicode=True))
    tmp.replace(path)
