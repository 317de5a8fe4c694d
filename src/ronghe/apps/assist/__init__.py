"""The customer-service assistant: intents, FAQ answers, out-of-scope detection and hand-off.

::

    config.py     AssistConfig: every knob of a build (pydantic), kept in the bundle
    data.py       reading intents, FAQ, out-of-scope examples, answers and evaluation queries
    oos.py        out-of-scope scores (max-probability, Mahalanobis, kNN, an oos class) and
                  the choice of one and its threshold on validation
    policy.py     the reply policy: intent -> FAQ -> clarify -> hand-off, with the reasons
    assistant.py  Assistant: fit, reply, save/load as a bundle (members are sub-bundles)
    evaluate.py   accuracy, FAQ hit rates, OOS P/R/F1, hand-off rate, coverage curve, latency
    privacy.py    masking of personal data before anything is stored or logged
    storage.py    conversations, replies and feedback through ``ronghe.store`` (SQLAlchemy)
    routes.py     the service's /v1/assist/... routes and the chat page, added to ``ronghe
                  serve``'s app
    cli.py        ``ronghe assist build | evaluate | serve | export-feedback``

>>> from ronghe.apps.assist import build, load
>>> bot = build("intents.csv", "faq.csv", oos="oos.csv")
>>> bot.reply("my card has not arrived")["reply"]
"""

from __future__ import annotations

from .assistant import Assistant, load


def build(intents, faq=None, *, oos=None, valid=None, answers=None, ner=None, text_col=None,
          label_col=None, **options) -> Assistant:
    """An ``Assistant`` fitted on files: intents (text + intent [+ answer]), FAQ (question,
    answer [, id]), optional out-of-scope texts, validation data (intents, FAQ ids or ``oos``),
    an answers file (intent, answer) and an NER bundle filling ``{slot}`` placeholders."""
    from ...estimator import load as load_estimator
    from . import data

    material = data.read_intents(intents, text_col=text_col, label_col=label_col)
    entries, notes = data.read_faq(faq) if faq else ([], [])
    material.notes.extend(notes)
    oos_texts = data.read_oos(oos) if oos else None
    valid_material = (data.read_intents(valid, text_col=text_col, label_col=label_col,
                                        role="validation") if valid else None)
    extra = data.read_answers(answers) if answers else None
    tagger = None
    if ner:
        from ...errors import ConfigError

        tagger = load_estimator(ner)
        if tagger.task != "token-classification":
            raise ConfigError(f"--ner {ner} holds a '{tagger.task}' model; give an NER bundle "
                              "(ronghe train --task ner)")
    return Assistant(**options).fit(material, entries, oos_texts, valid_material, extra, tagger)


__all__ = ["Assistant", "build", "load"]
