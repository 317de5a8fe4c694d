"""Tiny customer-service material made here: intents, FAQ, out-of-scope, validation, queries."""

from __future__ import annotations

import pandas as pd
import pytest

from assist_material import ANSWERS, FAQ, INTENTS, OOS, intents_frame  # noqa: F401


@pytest.fixture(scope="session")
def material(tmp_path_factory):
    """Paths of intents.csv (with an answer column), faq.csv, oos.csv, valid.csv, queries.csv."""
    d = tmp_path_factory.mktemp("assist-data")
    df = intents_frame(0)
    df["answer"] = df["intent"].map(ANSWERS)
    df.to_csv(d / "intents.csv", index=False)
    pd.DataFrame([{"id": i, "question": q, "answer": a if k == 0 else ""}
                  for i, qs, a in FAQ for k, q in enumerate(qs)]).to_csv(d / "faq.csv", index=False)
    pd.DataFrame({"text": OOS[:10]}).to_csv(d / "oos.csv", index=False)
    valid = [{"text": t + " again", "intent": i} for i, ts in INTENTS.items() for t in ts[:4]]
    valid += [{"text": t, "intent": "oos"} for t in OOS[10:13]]
    valid += [{"text": "opening times of the branch", "intent": "opening-hours"},
              {"text": "does the account have fees", "intent": "fees"}]
    pd.DataFrame(valid).to_csv(d / "valid.csv", index=False)
    queries = [{"message": t + " please", "expected": i} for i, ts in INTENTS.items()
               for t in ts[4:6]]
    queries += [{"message": t, "expected": "oos"} for t in OOS[13:]]
    queries += [{"message": "when do you open in the morning", "expected": "opening-hours"},
                {"message": "download the app", "expected": "app-download"}]
    pd.DataFrame(queries).to_csv(d / "queries.csv", index=False)
    return {k: d / f"{k}.csv" for k in ("intents", "faq", "oos", "valid", "queries")}


@pytest.fixture(scope="session")
def bot(material):
    from ronghe.apps.assist import build

    return build(material["intents"], material["faq"], oos=material["oos"],
                 valid=material["valid"])


@pytest.fixture(scope="session")
def saved(bot, tmp_path_factory):
    """The built assistant as a bundle folder named 'helpdesk'."""
    return bot.save(tmp_path_factory.mktemp("bundles") / "helpdesk")
