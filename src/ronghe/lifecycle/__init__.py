"""A deployed model's life after training: know when it decays, adapt it, retrain it safely.

::

    stats.py      the two-sample tests: MMD with a permutation p-value, classifier two-sample
                  test (C2ST), chi-square on label counts, confidence shift; each with its effect
                  size, so a big sample's tiny p-value alone never raises an alarm
    estimate.py   accuracy estimated without labels (CBPE: calibrate confidence on labelled
                  reference data, average it on the current data)
    drift.py      ``check(estimator, reference, current)`` -> the drift report (JSON-ready) and
                  ``ronghe drift``'s verdict; minimum sample sizes
    report.py     the drift report as one static HTML page with plots
    history.py    the model-history table (every retraining decision with its numbers)
    retrain.py    champion/challenger: train on the new data, compare on the newest held-out
                  slice (McNemar), gate on the old validation data, promote as the next version
    adapt.py      domain-adaptive pretraining (continued masked-LM training) -> a backbone folder
    selftrain.py  self-training (``ronghe train --unlabeled``): confident pseudo-labels, the
                  threshold chosen on validation, rounds kept while validation improves
    cli.py        ``ronghe drift``, ``ronghe retrain`` (+ ``--watch`` with a drift trigger),
                  ``ronghe adapt-domain``

Prediction logging (what ``--from-db`` reads) is a serving hook: ``serving/predlog.py``.
"""
