"""The assistant's fusion of the intent classifier and FAQ retrieval: links by answer, the vote,
the weight chosen on validation, the policy's use of it, the bundle."""

from __future__ import annotations

import numpy as np
import pytest

from ronghe.apps.assist import Assistant, load
from ronghe.apps.assist.config import AssistConfig
from ronghe.apps.assist.data import FaqEntry, Material
from ronghe.apps.assist.policy import Signals, Thresholds, decide

from assist_material import ANSWERS, INTENTS, intents_frame

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _material(seed=0) -> Material:
    df = intents_frame(seed)
    return Material(list(df.text), list(df.intent), dict(ANSWERS))


def _faq(extra: bool = True) -> list[FaqEntry]:
    """Every intent's questions as paraphrases of an FAQ entry with that intent's answer, and
    one entry answering for no intent."""
    out = [FaqEntry(f"faq-{i}", [t + " now" for t in ts], ANSWERS[i]) for i, ts in INTENTS.items()]
    if extra:
        out.append(FaqEntry("opening-hours", ["what are your opening hours", "when are you open"],
                            "Branches open 9:00-17:00."))
    return out


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    return Assistant(candidates=["classic"], retrieval_weight=0.3).fit(_material(), _faq())


def test_links_follow_answers_and_votes_sum_to_at_most_one(fused):
    classes = fused._classes()
    links = dict(zip(fused._faq_ids, fused._faq_class))
    assert links["opening-hours"] == -1
    for intent in INTENTS:
        assert classes[links[f"faq-{intent}"]] == intent
    E = fused.embed(["when will my new card arrive", "when are you open today"])
    V = fused._votes(E)
    assert V.shape == (2, len(classes))
    assert V[0].argmax() == classes.index("card_arrival") and V[0].max() > 0.5
    assert V[1].sum() < 0.5  # its neighbours are mostly the unlinked opening-hours entry
    assert (V >= 0).all() and (V.sum(1) <= 1 + 1e-9).all()


def test_leave_out_skips_the_message_itself(fused):
    q = "when will my new card arrive now"  # an FAQ question verbatim
    E = fused.embed([q])
    k = fused.config.retrieval_k
    sims, idx = fused._faq_index.search(E, k)
    assert fused._faq_questions[idx[0][0]] == q and sims[0][0] > 0.999
    with_self, without = fused._votes(E), fused._votes(E, leave_out=[q])
    assert not np.allclose(with_self, without)
    # without its own copy the vote is that of the next k questions
    s2, i2 = fused._faq_index.search(E, k + 1)
    w = np.exp((s2[0][1:] - s2[0][1]) / fused.config.retrieval_temperature)
    manual = np.zeros(len(fused._classes()))
    c = fused._faq_class[i2[0][1:]]
    np.add.at(manual, c[c >= 0], w[c >= 0])
    assert np.allclose(without[0], manual / w.sum())


def test_weight_is_chosen_on_validation_and_kept_in_the_bundle(tmp_path):
    bot = Assistant(candidates=["classic"]).fit(_material(), _faq())
    rep = bot.metrics_["fusion"]
    assert rep["linked_entries"] == len(INTENTS)
    grid = {float(w): a for w, a in rep["valid_accuracy"].items()}
    assert set(grid) == {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}
    best = max(grid.values())
    assert bot.retrieval_weight_ == min(w for w, a in grid.items() if a == best)
    bot.retrieval_weight_ = 0.4  # a weight the signals must then use, saved and loaded
    again = load(bot.save(tmp_path / "b"))
    assert again.retrieval_weight_ == 0.4
    msgs = ["my card was stolen", "how much money do i have", "send money to my friend"]
    sigs, P, _ = again.signals(msgs)
    for s, p in zip(sigs, P):
        top, score = s.intents[0]
        f = s.fusion
        assert f["retrieval_weight"] == 0.4
        assert score == pytest.approx(0.6 * f["classifier"] + 0.4 * f["retrieval"], abs=1e-3)
        assert f["classifier_top"] == again._classes()[int(p.argmax())]


def test_without_linked_entries_the_classifier_alone_decides():
    faq = [FaqEntry("opening-hours", ["what are your opening hours", "when are you open"],
                    "Branches open 9:00-17:00.")]
    bot = Assistant(candidates=["classic"]).fit(_material(), faq)
    assert bot.retrieval_weight_ == 0.0 and "classifier alone" in bot.metrics_["fusion"]["rule"]
    sigs, P, _ = bot.signals(["i lost my card"])
    assert sigs[0].fusion is None and sigs[0].intents[0][1] == pytest.approx(P[0].max())


def test_older_bundles_load_without_fusion(fused, tmp_path):
    import json

    from ronghe import bundle

    path = fused.save(tmp_path / "old")
    manifest = json.loads((path / "ronghe.json").read_text())
    del manifest["state"]["retrieval_weight"]  # as written before the fusion existed
    manifest["sealed_sha256"] = bundle.seal(manifest)
    (path / "ronghe.json").write_text(json.dumps(manifest))
    assert load(path).retrieval_weight_ == 0.0


def test_a_linked_faq_match_answers_the_fused_top_intent():
    cfg = AssistConfig()
    t = Thresholds("mahalanobis", 10.0, 0.6)
    ans = {"a_one": "A", "b_two": "B"}
    faq = {"f-b": "B", "g": "G"}
    fusion = {"retrieval_weight": 0.3, "classifier": 0.5, "retrieval": 0.9,
              "classifier_top": "b_two"}
    # flagged out of scope, but the nearest FAQ entry answers as intent b_two
    s = Signals([("a_one", 0.62), ("b_two", 0.3)], 12.0, [("f-b", 0.7, "q")], {}, fusion, "b_two")
    r = decide(s, t, cfg, ans, faq)
    assert r["kind"] == "intent" and r["intent"] == "a_one" and r["reply"] == "A"
    assert "in scope" in r["why"]["rule"] and r["why"]["intent"]["fusion"] == fusion
    # the same match below the FAQ threshold: handed off
    s.faq = [("f-b", 0.5, "q")]
    assert decide(s, t, cfg, ans, faq)["kind"] == "fallback"
    # an unlinked entry keeps its own answer; so does any entry without fusion
    s.faq, s.faq_intent = [("g", 0.7, "q")], None
    assert decide(s, t, cfg, ans, faq)["kind"] == "faq"
    s.faq, s.faq_intent, s.fusion = [("f-b", 0.7, "q")], "b_two", None
    r = decide(s, t, cfg, ans, faq)
    assert r["kind"] == "faq" and r["faq_id"] == "f-b"
