"""The assistant: build, reply policy, out-of-scope choice, bundle, evaluation, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ronghe.apps.assist import Assistant, build, load
from ronghe.apps.assist.config import AssistConfig
from ronghe.apps.assist.oos import Combined, best_threshold
from ronghe.apps.assist.data import read_faq
from ronghe.apps.assist.policy import Signals, Thresholds, decide, fill
from ronghe.errors import BundleError, ConfigError, DataError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_build_compares_classifiers_and_oos_methods_on_validation(bot):
    m = bot.metrics_
    assert set(m["candidates"]) == {"classic", "frozen", "weighted"}
    assert bot.strategy_ in m["candidates"]
    assert m["candidates"][bot.strategy_] == max(m["candidates"].values())
    assert set(m["oos"]) == {"maxprob", "mahalanobis", "knn", "oos_class", "combined"}
    for name, r in m["oos"].items():
        assert 0.5 <= r["auroc"] <= 1.0 and 0 <= r["f1"] <= 1, name
    assert bot.oos_method_ == max(m["oos"], key=lambda n: m["oos"][n]["f1"]) or \
        m["oos"][bot.oos_method_]["f1"] == max(r["f1"] for r in m["oos"].values())
    assert m["valid"]["n_oos"] == 3 and m["valid"]["n_faq"] == 2
    assert m["faq"]["rule"].startswith("best F1")


def test_replies_answer_hand_off_and_explain(bot):
    r = bot.reply("i lost my card somewhere, block it")
    assert r["kind"] == "intent" and r["intent"] == "lost_card" and not r["handoff"]
    assert r["reply"].startswith("I have frozen your card")
    assert r["why"]["oos"]["threshold"] == round(bot.oos_threshold_, 4)
    assert r["why"]["intent"]["label"] == "lost_card" and "rule" in r["why"]
    oos = bot.reply("who won the tennis match yesterday")
    assert oos["kind"] == "fallback" and oos["handoff"] is True
    assert oos["reply"] == AssistConfig().fallback_message
    assert oos["why"]["oos"]["out_of_scope"] is True
    faq = bot.reply("when are your branches open")
    assert faq["kind"] == "faq" and faq["faq_id"] == "opening-hours"
    assert faq["why"]["faq"]["similarity"] >= faq["why"]["faq"]["threshold"]


def test_missing_slot_is_asked_for(bot):
    r = bot.reply("where is my new debit card")
    assert r["intent"] == "card_arrival"
    assert r["reply"] == "Could you tell me your order?" and r["why"]["slots_missing"] == ["order"]


def test_policy_rules():
    cfg = AssistConfig()
    t = Thresholds("maxprob", 0.5, 0.8)
    ans = {"a_one": "A {name}", "b_two": "B"}
    faq = {"f": "F"}
    close = Signals([("a_one", 0.45), ("b_two", 0.40)], 0.3, [("f", 0.5, "q")], {})
    r = decide(close, t, cfg, ans, faq)
    assert r["kind"] == "clarify" and r["options"] == ["a_one", "b_two"]
    assert r["reply"] == "Do you mean a one or b two?" and not r["handoff"]
    r = decide(Signals(close.intents, 0.3, [("f", 0.9, "q")], {}), t, cfg, ans, faq)
    assert r["kind"] == "faq" and r["faq_id"] == "f"  # a FAQ match beats a clarifying question
    r = decide(Signals([("a_one", 0.9), ("b_two", 0.05)], 0.1, [], {"name": "Ann"}), t, cfg,
               ans, faq)
    assert r["reply"] == "A Ann" and r["kind"] == "intent"
    r = decide(Signals([("a_one", 0.9), ("b_two", 0.05)], 0.6, [("f", 0.7, "q")], {}), t, cfg,
               ans, faq)
    assert r["kind"] == "fallback" and r["handoff"] and "0.700 < 0.800" in r["why"]["rule"]
    assert fill("{a} and {b}", {"a": "1"}) == ("1 and {b}", ["b"])


def test_bundle_round_trip_and_tamper(bot, saved):
    again = load(saved)
    msgs = ["my card never came", "tell me a joke", "is there a monthly fee", "balance please"]
    assert [r["reply"] for r in again.reply_many(msgs)] == [r["reply"] for r in bot.reply_many(msgs)]
    manifest = json.loads((saved / "ronghe.json").read_text())
    assert manifest["task"] == "assistant" and "members/intent/ronghe.json" in manifest["files"]
    assert not list(saved.rglob("*.pkl")) and not list(saved.rglob("*.pickle"))
    import shutil

    broken = saved.parent / "broken"
    shutil.copytree(saved, broken)
    victim = next(p for p in sorted((broken / "members" / "intent").rglob("*"))
                  if p.is_file() and p.name != "ronghe.json")
    victim.write_bytes(victim.read_bytes() + b"x")
    with pytest.raises(BundleError, match="sha256"):
        load(broken)


def test_without_oos_examples_the_documented_rule_applies(material):
    df = pd.read_csv(material["intents"])
    faq, _ = read_faq(material["faq"])
    from ronghe.apps.assist.data import read_intents

    bot = Assistant(candidates=["classic"]).fit(read_intents(material["intents"]), faq)
    assert bot.oos_method_ == "mahalanobis"
    rule = bot.metrics_["oos"]["mahalanobis"]["rule"]
    assert "5%" in rule and bot.metrics_["valid"]["n_oos"] == 0
    assert bot.metrics_["faq"]["positives"].endswith("matched against the others")
    assert len(df) > bot.data_["n_intent_examples"]  # a share was held out for validation


def test_bad_material_is_refused_with_rows(tmp_path, material):
    faq = tmp_path / "faq.csv"
    pd.DataFrame({"id": ["x", "x"], "question": ["q1", "q2"],
                  "answer": ["one", "two"]}).to_csv(faq, index=False)
    with pytest.raises(DataError, match=r"'x' has two different answers \(rows 1 and 2\)"):
        read_faq(faq)
    pd.DataFrame({"id": ["balance"], "question": ["q"], "answer": ["a"]}).to_csv(faq, index=False)
    with pytest.raises(DataError, match="also intent names: balance"):
        build(material["intents"], faq, candidates=["classic"])
    valid = tmp_path / "valid.csv"
    pd.DataFrame({"text": ["hi there"], "intent": ["greeting"]}).to_csv(valid, index=False)
    with pytest.raises(DataError, match="neither intents nor FAQ ids.*greeting"):
        build(material["intents"], material["faq"], valid=valid, candidates=["classic"])


def test_cli_build_evaluate_and_errors(material, saved, tmp_path):
    from ronghe.cli import app

    runner = CliRunner()
    out = tmp_path / "report"
    res = runner.invoke(app, ["assist", "evaluate", str(saved), str(material["queries"]),
                              "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["n"] == 13 and report["n_oos"] == 3 and report["n_faq"] == 2
    for key in ("intent_accuracy", "faq_top1", "faq_top5", "handoff_rate", "reply_accuracy"):
        assert 0 <= report[key] <= 1
    assert report["faq_top5"] >= report["faq_top1"]
    assert report["oos_handoff"]["n_oos"] == 3 and report["latency_ms"]["p95"] > 0
    assert report["handoff_rate"] == pytest.approx(report["kinds"]["fallback"] / 13, abs=1e-4)
    assert out.with_suffix(".png").stat().st_size > 5000
    cov = report["curve"]["coverage"]
    assert cov == sorted(cov) and cov[-1] == 1.0
    bad = tmp_path / "queries.csv"
    pd.DataFrame({"message": ["hello"], "expected": ["nope"]}).to_csv(bad, index=False)
    res = runner.invoke(app, ["assist", "evaluate", str(saved), str(bad)])
    assert res.exit_code == 2 and "nope" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["assist", "build", "--intents", str(tmp_path / "missing.csv"),
                              "--faq", str(material["faq"]), "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "not found" in res.output


def test_threshold_reweighted_to_the_expected_share_and_a_target_precision():
    rng = np.random.default_rng(0)
    in_scope, oos = rng.normal(0, 1, 900), rng.normal(2.5, 1, 100)
    scores, is_oos = np.r_[in_scope, oos], np.r_[np.zeros(900, bool), np.ones(100, bool)]
    thr, r = best_threshold(scores, is_oos)
    flagged = scores >= thr
    assert r["precision"] == pytest.approx((flagged & is_oos).sum() / flagged.sum())
    # more out-of-scope traffic expected: each flagged OOS message is worth more, so the
    # threshold moves down and recall up
    thr_half, r_half = best_threshold(scores, is_oos, share=0.5)
    assert thr_half < thr and r_half["recall"] > r["recall"]
    w = 0.5 / 0.5 * 900 / 100
    tp, fp = (scores[is_oos] >= thr_half).sum() * w, (scores[~is_oos] >= thr_half).sum()
    assert r_half["precision"] == pytest.approx(tp / (tp + fp))
    # a target precision: the most recall that still reaches it
    thr_t, r_t = best_threshold(scores, is_oos, target_precision=0.6)
    assert r_t["precision"] >= 0.6 and "target_missed" not in r_t
    lower = np.sort(scores[scores < thr_t])[-1]  # one more message flagged
    f = scores >= lower
    assert (f & is_oos).sum() / f.sum() < 0.6
    few, few_oos = np.array([3.0, 2.0, 1.0, 0.0]), np.array([False, True, False, True])
    _, r_miss = best_threshold(few, few_oos, target_precision=0.9)  # never above 0.5
    assert "target_missed" in r_miss and r_miss == {**best_threshold(few, few_oos)[1],
                                                    "target_missed": r_miss["target_missed"]}


def test_combined_score_standardises_its_parts():
    c = Combined.fit({"a": np.array([0.0, 2.0]), "b": np.array([10.0, 30.0])})
    assert c.parts == ["a", "b"] and c.mean == [1.0, 20.0] and c.std == [1.0, 10.0]
    assert c.score({"a": np.array([1.0, 3.0]), "b": np.array([20.0, 20.0])}) == \
        pytest.approx([0.0, 1.0])
    assert Combined(**c.to_json()).score({"a": [3.0], "b": [40.0]}) == pytest.approx([2.0])


def test_combined_out_of_scope_score_round_trips(material, tmp_path):
    bot = build(material["intents"], material["faq"], oos=material["oos"],
                valid=material["valid"], candidates=["classic"], oos_methods=["combined"],
                oos_target_precision=0.5, expected_oos_share=0.2)
    assert bot.oos_method_ == "combined" and set(bot.metrics_["oos"]) == {"combined"}
    assert bot.combined_.parts == ["knn", "mahalanobis", "maxprob", "oos_class"]
    rule = bot.metrics_["oos"]["combined"]["rule"]
    assert "precision >= 0.5" in rule and "share of 0.2" in rule
    again = load(bot.save(tmp_path / "combined"))
    msgs = ["my card never came", "tell me a joke", "is there a monthly fee"]
    _, P, E = bot.signals(msgs)
    assert again.oos_scores(msgs, P, E) == pytest.approx(bot.oos_scores(msgs, P, E), abs=1e-5)
    assert [r["kind"] for r in again.reply_many(msgs)] == [r["kind"] for r in bot.reply_many(msgs)]


def test_mahalanobis_on_the_fine_tuned_encoder(material, tmp_path):
    """With a fine-tuned classifier the distance score can read that encoder's own features:
    compared on validation beside the others, saved in the bundle, the same after loading."""
    bot = build(material["intents"], material["faq"], oos=material["oos"],
                valid=material["valid"], candidates=["finetune"],
                candidate_options={"finetune": {"epochs": 2, "batch_size": 8}},
                oos_methods=["mahalanobis", "mahalanobis_tuned"])
    tuned = bot._tuned()
    assert tuned is bot.classifier_.strategy_ and tuned.name == "finetune"
    report = bot.metrics_["oos"]
    assert set(report) == {"mahalanobis", "mahalanobis_tuned"}
    msgs = ["my card never came", "tell me a joke about penguins", "is there a monthly fee"]
    frozen_view = bot.embed(msgs)
    tuned_view = tuned.embed(msgs)
    assert not np.allclose(frozen_view, tuned_view / np.linalg.norm(tuned_view, axis=1,
                                                                    keepdims=True), atol=1e-3)
    scores = bot.all_oos_scores(msgs)
    assert not np.allclose(scores["mahalanobis"], scores["mahalanobis_tuned"])
    # keep the tuned score alone: chosen, saved, loaded, scored the same
    only = build(material["intents"], material["faq"], oos=material["oos"],
                 valid=material["valid"], candidates=["finetune"],
                 candidate_options={"finetune": {"epochs": 2, "batch_size": 8}},
                 oos_methods=["mahalanobis_tuned"])
    assert only.oos_method_ == "mahalanobis_tuned" and only.maha_ is None
    folder = only.save(tmp_path / "tuned")
    again = load(folder)
    _, P, E = only.signals(msgs)
    assert again.oos_scores(msgs, P, E) == pytest.approx(only.oos_scores(msgs, P, E), abs=1e-4)
    assert [r["kind"] for r in again.reply_many(msgs)] == [r["kind"] for r in only.reply_many(msgs)]
    # a reply reads the intent and the tuned distance from one pass of the fine-tuned encoder
    net = again._tuned().model
    encode, seen = net.embed, []
    net.embed = lambda ids, mask: (seen.append(len(ids)), encode(ids, mask))[1]
    again.reply_many(["where is my new card", "what is the capital of peru"])
    assert sum(seen) == 2


def test_mahalanobis_tuned_is_skipped_without_a_fine_tuned_encoder(material):
    bot = build(material["intents"], material["faq"], oos=material["oos"],
                valid=material["valid"], candidates=["classic"],
                oos_methods=["maxprob", "mahalanobis_tuned"])
    assert bot._tuned() is None and set(bot.metrics_["oos"]) == {"maxprob"}
    assert bot.oos_method_ == "maxprob"
    with pytest.raises(ConfigError, match="only mahalanobis_tuned, which needs a fine-tuned"):
        build(material["intents"], material["faq"], oos=material["oos"],
              valid=material["valid"], candidates=["classic"], oos_methods=["mahalanobis_tuned"])
