"""Sentiment and topic monitoring: score a stream of items with saved bundles, store them in a
database, and alert when a watch key's negative share surges.

* ``config.py``     ``MonitorConfig`` (pydantic): models, sources, database, rules, sinks, serve
* ``items.py``      item checks: ``{id, time, text, source?, meta?}``, content-hash ids, reasons
* ``scoring.py``    sentiment / topic / NER bundles on whole batches
* ``detectors.py``  CUSUM and binomial surge detectors over a key's EWMA baseline
* ``storage.py``    the tables (through ``ronghe.store.Store``)
* ``monitor.py``    ``Monitor.process``: one transaction per batch, idempotent by id
* ``sources.py``    the watched folder (offsets in the database) and stdin
* ``sinks.py``      webhooks with retries and back-off, outcomes recorded
* ``runner.py``     the loop; ``cli.py``: ``ronghe monitor run / report``
"""


__all__ = ["Monitor", "MonitorConfig", "RuleConfig", "build"]


def __getattr__(name: str):  # lazy: ``ronghe --help`` does not import SQLAlchemy
    if name == "Monitor":
        from .monitor import Monitor

        return Monitor
    if name in ("MonitorConfig", "RuleConfig", "build"):
        from . import config

        return getattr(config, name)
    raise AttributeError(name)
