"""The reply policy: from a message's signals to one reply, with the reasons kept.

In order:

1. a confident intent (the out-of-scope score under its threshold and no close runner-up)
   -> the intent's answer;
2. else the nearest FAQ entry, if its similarity reaches the FAQ threshold -> its answer; but
   when that entry's answer is an intent's answer (with classifier and retrieval fused), the
   match only says the message is in scope: the fused scores' top intent is answered - they
   already hold the entry's vote, and the nearest question alone is the weaker signal
   (``assistant.py``, step 4; BANKING77 in benchmarks/README.md);
3. else, if the message is in scope but two intents are too close (the runner-up's probability
   is at least ``ambiguity_ratio`` of the top one's and at least ``ambiguity_min``) -> a
   clarifying question naming both;
4. else out of scope -> the fallback message and ``handoff: true``.

Answers may hold ``{slot}`` placeholders, filled from the message's entities (an NER bundle's
labels, lower-cased); a missing one is asked for instead of answered with a gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config import AssistConfig

SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def display(name: str) -> str:
    """An intent's name as a person reads it: ``card_arrival`` -> ``card arrival``."""
    return name.replace("_", " ").replace("-", " ").strip()


def fill(template: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """``template`` with ``{slot}`` fields replaced; the names of fields without a value."""
    missing: list[str] = []

    def sub(m: re.Match) -> str:
        v = values.get(m.group(1)) or values.get(m.group(1).lower())
        if v is None:
            if m.group(1) not in missing:
                missing.append(m.group(1))
            return m.group(0)
        return v

    return SLOT.sub(sub, template), missing


@dataclass
class Signals:
    """What the models say about one message."""

    intents: list[tuple[str, float]]  # best first (at least the top two when there are two)
    oos_score: float
    faq: list[tuple[str, float, str]]  # (entry id, similarity, matched question), best first
    entities: dict[str, str]
    fusion: dict | None = None  # the classifier's and retrieval's shares of the top intent
    faq_intent: str | None = None  # the intent whose answer the nearest FAQ entry gives


@dataclass
class Thresholds:
    oos_method: str
    oos: float
    faq: float


def decide(s: Signals, t: Thresholds, cfg: AssistConfig, answers: dict[str, str],
           faq_answers: dict[str, str]) -> dict:
    top, p1 = s.intents[0]
    second, p2 = s.intents[1] if len(s.intents) > 1 else (None, 0.0)
    in_scope = s.oos_score < t.oos
    ambiguous = second is not None and p2 >= max(cfg.ambiguity_ratio * p1, cfg.ambiguity_min)
    best_faq = s.faq[0] if s.faq else None
    faq_ok = best_faq is not None and best_faq[1] >= t.faq
    why: dict = {
        "intent": {"label": top, "score": round(p1, 4), "runner_up": second,
                   "runner_up_score": round(p2, 4), "ambiguous": ambiguous,
                   "ambiguity_ratio": cfg.ambiguity_ratio},
        "oos": {"method": t.oos_method, "score": round(float(s.oos_score), 4),
                "threshold": round(t.oos, 4), "out_of_scope": not in_scope},
        "faq": ({"id": best_faq[0], "similarity": round(float(best_faq[1]), 4),
                 "threshold": round(t.faq, 4), "question": best_faq[2]} if best_faq else None),
    }
    if s.fusion:
        why["intent"]["fusion"] = s.fusion
    out = {"kind": "fallback", "intent": None, "faq_id": None, "handoff": False, "options": []}
    if in_scope and not ambiguous:
        template = answers.get(top) or cfg.intent_message.replace("{intent}", display(top))
        out.update(kind="intent", intent=top)
        why["rule"] = (f"intent '{top}' ({p1:.2f}); out-of-scope score {s.oos_score:.3f} < "
                       f"{t.oos:.3f} ({t.oos_method}); no close runner-up")
    elif faq_ok and s.fusion and s.faq_intent:
        template = answers.get(top) or cfg.intent_message.replace("{intent}", display(top))
        out.update(kind="intent", intent=top)
        why["rule"] = ((f"'{top}' and '{second}' are close" if in_scope else
                        f"out-of-scope score {s.oos_score:.3f} >= {t.oos:.3f}")
                       + f", but FAQ '{best_faq[0]}' (similarity {best_faq[1]:.3f} >= "
                       f"{t.faq:.3f}) answers as intent '{s.faq_intent}', so the message is in "
                       f"scope; the fused scores (its vote included) choose intent '{top}' "
                       f"({p1:.2f})")
    elif faq_ok:
        template = faq_answers[best_faq[0]]
        out.update(kind="faq", faq_id=best_faq[0])
        why["rule"] = (f"FAQ '{best_faq[0]}' similarity {best_faq[1]:.3f} >= {t.faq:.3f}"
                       + (f"; intent '{top}' and '{second}' too close" if in_scope else
                          f"; out-of-scope score {s.oos_score:.3f} >= {t.oos:.3f}"))
    elif in_scope and ambiguous:
        template = (cfg.clarify_message.replace("{first}", display(top))
                    .replace("{second}", display(second)))
        out.update(kind="clarify", options=[top, second])
        why["rule"] = (f"'{top}' ({p1:.2f}) and '{second}' ({p2:.2f}) are too close (runner-up "
                       f">= {cfg.ambiguity_ratio:g} x top); no FAQ entry reaches {t.faq:.3f}")
    else:
        template = cfg.fallback_message
        out.update(kind="fallback", handoff=True)
        why["rule"] = (f"out of scope: score {s.oos_score:.3f} >= {t.oos:.3f} ({t.oos_method})"
                       + (f" and the nearest FAQ entry's similarity {best_faq[1]:.3f} < "
                          f"{t.faq:.3f}" if best_faq else ""))
    text, missing = fill(template, s.entities) if out["kind"] in ("intent", "faq") else (template, [])
    if missing:
        why["slots_missing"] = missing
        text = cfg.missing_slot_message.replace("{slot}", display(missing[0]))
    if s.entities:
        why["entities"] = dict(s.entities)
    why["decision"] = out["kind"]
    out["reply"] = text
    out["why"] = why
    return out
