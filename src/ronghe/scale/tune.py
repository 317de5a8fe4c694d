"""Hyper-parameter search on a Ray cluster: ``ronghe tune DATA --engine ray --concurrent K
[--address auto|ray://HOST:PORT]``.

The same study as ``ronghe tune`` (``ronghe/tune.py``: its search spaces, trial fit and
``best.yaml``), run by Ray Tune: the Optuna TPE sampler proposes configs through
``ray.tune.search.optuna.OptunaSearch`` (define-by-run: the very space functions of the local
search), up to K trials train at once (each on ``cluster CPUs / K`` CPUs, at most 1), and the
ASHA scheduler stops trials whose per-epoch validation score falls behind (the local search's
median pruning). Trials of strategies without epochs (classic, frozen) report once. Ray keeps
the trials' results under ``STUDY_DIR/ray``; ``STUDY_DIR/best.yaml`` is written as by the local
search - ``ronghe train --config STUDY_DIR/best.yaml --out DIR`` trains it. Each run is a new
search (the local engine's SQLite study is what continues across runs).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..log import info
from ..training.callbacks import Callback
from ..tune import SEARCH_SPACES, Problem, require_optuna


class TuneReport(Callback):
    """Report each epoch's validation score to Ray Tune (ASHA decides on it)."""

    def on_epoch_end(self, loop, row):
        from ray import tune

        tune.report({"score": row[f"valid_{loop.cfg.monitor}"], "epoch": row["epoch"]})


class Space:
    """The define-by-run space for ``OptunaSearch``: the local search's space function (looked
    up by name, so that Tune can pickle the searcher); a trial's config is its raw parameters."""

    def __init__(self, task: str, strategy: str):
        self.task, self.strategy = task, strategy

    def __call__(self, trial) -> None:
        SEARCH_SPACES[self.task][self.strategy](trial)


def _trial(config: dict, problem: Problem) -> None:
    """One Ray Tune trial: the local search's trial fit on the sampled parameters."""
    import optuna
    from ray import tune

    score, attrs = problem.fit(problem.options(optuna.trial.FixedTrial(config)), [TuneReport()])
    tune.report({"score": score, "complete": 1, **attrs})


def tune_on_ray(train, *, strategy: str, study_dir: Path, task: str = "text-classification",
                trials: int = 20, timeout: float | None = None, valid=None,
                base: dict | None = None, seed: int = 0, data_paths: dict | None = None,
                concurrent: int = 2, address: str | None = None) -> dict:
    """Run ``trials`` trials, ``concurrent`` at a time, on Ray; write ``study_dir/best.yaml``.
    Returns ``{"value", "params", "trials", "complete", "best_yaml"}``."""
    optuna = require_optuna()
    from .batch import connect

    problem = Problem(train, strategy=strategy, task=task, valid=valid, base=base, seed=seed)
    ray = connect(address)
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    cpus = min(1.0, round(ray.cluster_resources().get("CPU", 1) / concurrent, 2))
    study_dir = Path(study_dir).resolve()
    study_dir.mkdir(parents=True, exist_ok=True)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_trial, problem=problem), {"cpu": cpus}),
        tune_config=tune.TuneConfig(
            num_samples=trials, max_concurrent_trials=concurrent, time_budget_s=timeout,
            search_alg=OptunaSearch(space=Space(problem.spec.name, strategy), metric="score", mode="max",
                                    sampler=optuna.samplers.TPESampler(seed=seed)),
            scheduler=ASHAScheduler(metric="score", mode="max", grace_period=1,
                                    reduction_factor=3)),
        run_config=tune.RunConfig(name=problem.study_name, storage_path=str(study_dir / "ray"),
                                  verbose=0))
    info("Ray Tune: %d trials, %d at a time (%g CPU each)", trials, concurrent, cpus)
    results = tuner.fit()
    done = [r for r in results if r.error is None and (r.metrics or {}).get("complete")]
    if not done:
        errors = [str(r.error).splitlines()[0] for r in results if r.error is not None]
        raise ConfigError("no trial completed; raise --timeout or --trials"
                          + (f" (first error: {errors[0]})" if errors else ""))
    best = max(done, key=lambda r: r.metrics["score"])
    path = problem.write_best(study_dir, best.config, data_paths, trials=len(results),
                              value=best.metrics["score"], number=best.metrics["trial_id"],
                              source=Path(results.experiment_path))
    return {"value": best.metrics["score"], "params": best.config, "trials": len(results),
            "complete": len(done), "best_yaml": str(path)}
