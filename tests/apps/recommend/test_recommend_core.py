"""The recommender itself: time-aware split, seen items excluded, topic-true recommendations
with reasons, cold start from text, one-interaction users, the bundle, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rec_material import OPTIONS, topic_of

from ronghe.apps.recommend import evaluate as ev
from ronghe.apps.recommend import load
from ronghe.apps.recommend.data import leave_last_out, read_interactions
from ronghe.apps.recommend.ranker import with_new_places
from ronghe.apps.recommend.recommender import fewest_new_places
from ronghe.errors import DataError


def test_leave_last_out_goes_by_time_not_file_order():
    inter = pd.DataFrame({"user": ["a", "a", "a", "b"], "item": ["x", "y", "z", "x"],
                          "time": [30.0, 10.0, 20.0, 5.0]})
    train, test = leave_last_out(inter, 1)
    assert test.to_dict("records") == [{"user": "a", "item": "x", "time": 30.0}]
    assert sorted(train["item"]) == ["x", "y", "z"]  # b's only interaction stays in training
    assert set(train[train.user == "a"]["item"]) == {"y", "z"}


def test_recommendations_follow_the_users_taste_and_skip_what_they_had(rec, shop):
    hits = []
    for user, g in shop["train"].groupby("user"):
        topic = user.split("-")[1]
        out = rec.recommend(user, 3)
        assert len(out) == 3
        assert not set(o["item"] for o in out) & set(g["item"])  # seen items excluded
        hits.append(np.mean([topic_of(o["item"]) == topic for o in out]))
    assert np.mean(hits) > 0.8, np.mean(hits)
    first = rec.recommend("u-space-0", 1)[0]
    assert first["reasons"] and {r["signal"] for r in first["reasons"]} <= {
        "popularity", "recency", "cooccurrence", "mf", "text", "user", "item"}
    assert all(r["contribution"] > 0 for r in first["reasons"])
    assert set(first["signals"]) == {"popularity", "cooccurrence", "mf", "text"}


def test_cold_items_are_placed_by_their_text(rec):
    assert rec.signals_.counts[rec.item_pos_["space-new"]] == 0
    # among the never-touched items, each topic's users get their own topic's new item first
    cold = [rec.item_pos_[f"{t}-new"] for t in ("space", "romance", "cooking", "football")]
    right = 0
    users = [u for u in rec.user_ids_]
    for user in users:
        full, _ = rec.full_ranking(user)
        best = cold[int(np.argmax(full[cold]))]
        right += topic_of(rec.item_ids_[best]) == user.split("-")[1]
    assert right / len(users) > 0.75, right / len(users)
    sim = rec.similar(text="a book of soup and pasta recipes", k=3)
    assert all(topic_of(s["item"]) == "cooking" for s in sim)


def test_a_user_with_one_interaction_gets_that_taste(rec):
    for topic in ("romance", "football"):
        out = rec.recommend(history=[f"{topic}-2"], k=5)
        assert f"{topic}-2" not in {o["item"] for o in out}
        assert np.mean([topic_of(o["item"]) == topic for o in out]) >= 0.6, out
    assert len(rec.recommend("someone-new", 5)) == 5  # unknown user: popular items


def test_new_items_and_clicks_change_recommendations_at_once(saved):
    rec = load(saved)
    assert rec.add_items(["space-x1"], ["a starship crew explores a new galaxy in space"]) == \
        ["space-x1"]
    assert rec.add_items(["space-x1"], ["again"]) == []  # known ids are not added twice
    full, _ = rec.full_ranking("u-space-1")
    other, _ = rec.full_ranking("u-cooking-1")
    pos = rec.item_pos_["space-x1"]
    assert np.isfinite(full[pos])
    assert (full > full[pos]).sum() < (other > other[pos]).sum()
    before = [o["item"] for o in rec.recommend("u-space-1", 3)]
    rec.add_interaction("u-space-1", before[0])
    after = [o["item"] for o in rec.recommend("u-space-1", 3)]
    assert before[0] not in after


def test_the_bundle_has_no_pickle_and_reloads_the_same(rec, saved):
    files = {p.name for p in saved.rglob("*") if p.is_file()}
    assert files == {"ronghe.json", "arrays.safetensors", "ranker.txt"}
    assert (saved / "ranker.txt").read_text().startswith("tree")  # LightGBM's text model
    again = load(saved)
    for user in ("u-space-3", "u-football-5"):
        assert again.recommend(user, 5) == rec.recommend(user, 5)
    manifest = json.loads((saved / "ronghe.json").read_text())
    assert manifest["task"] == "recommender" and manifest["backbone"]["ref"] == "minilm"


def test_a_bundle_from_before_the_cold_start_options_loads_as_it_was(saved, tmp_path):
    import shutil

    from ronghe.bundle import seal

    old = shutil.copytree(saved, tmp_path / "old")
    manifest = json.loads((old / "ronghe.json").read_text())
    for key in ("cold_candidates", "new_places", "cold_holdout_by"):
        manifest["config"].pop(key)
    manifest["sealed_sha256"] = seal(manifest)  # as that older ronghe wrote and sealed it
    (old / "ronghe.json").write_text(json.dumps(manifest))
    rec = load(old)
    assert rec.config.cold_candidates == 0 and rec.config.new_places == 0
    assert rec.new_places_ == 0
    assert load(saved).config.cold_candidates == 20  # saved now: its own value
    assert len(rec.recommend("u-space-3", 5)) == 5


def test_evaluation_ranks_the_whole_catalogue_side_by_side(rec, shop):
    report = ev.evaluate(rec, shop["test"])
    m = report["methods"]
    assert set(m) == set(ev.METHODS)
    fused, pop = m["fused"]["all"], m["popularity"]["all"]
    assert fused["n"] == len(shop["test"])
    assert fused["ndcg@10"] > pop["ndcg@10"]
    assert 0 <= fused["ndcg@10"] <= fused["hr@10"] <= fused["recall@50"] <= 1
    assert m["fused"]["history_1"]["n"] == len(shop["test"])
    assert report["latency_ms"]["p50"] > 0
    table = ev.markdown(report)
    assert "| fused |" in table and "**cold**" in table
    with pytest.raises(DataError, match="already in the users' training histories"):
        ev.evaluate(rec, shop["train"])


def test_bad_interactions_are_refused_with_the_rows(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("user,item,time\na,x,1\n,y,2\nb,z,soon\n")
    with pytest.raises(DataError, match="rows 3"):
        read_interactions(p)
    p.write_text("user,item,time\na,x,1\nb,z,soon\n")
    with pytest.raises(DataError, match="ISO 8601.*rows 3"):
        read_interactions(p)
    p.write_text("customer,product,when\na,x,1\n")
    with pytest.raises(DataError, match="--time-col"):
        read_interactions(p)


def test_the_bandit_explores_other_clusters_and_learns_from_clicks(rec, shop):
    from ronghe.apps.recommend.bandit import Explorer, replay

    ex = Explorer(rec, clusters=4, slots=2, dims=4)
    items, explored = ex.slate("u-space-4", 6)
    seen = set(rec.hist_[rec.user_pos_["u-space-4"]])
    assert len(items) == len(set(items)) == 6 and not seen & set(items)
    assert len(explored) == 2 and len(set(explored.values())) == 2  # two different arms
    hist = rec.hist_[rec.user_pos_["u-space-4"]]
    x = ex.context(hist)[None]
    arm = next(iter(explored.values()))
    shown = {i: a for i, a in explored.items() if a == arm}
    ignored = Explorer(rec, clusters=4, slots=2, dims=4)
    for _ in range(5):
        ex.update(hist, shown, set(shown))  # clicked
        ignored.update(hist, shown, set())  # shown, not clicked
    assert ex.mab.predict_expectations(x)[arm] > ignored.mab.predict_expectations(x)[arm] + 0.1
    report = replay(rec, Explorer(rec, clusters=4, slots=2, dims=4), shop["test"], k=5)
    assert report["events"] == len(shop["test"]) and "replay" in report["estimator"]
    assert 0 <= report["explore_hr@5"] <= 1 and report["ranker_hr@5"] > 0.3


def test_the_cold_holdout_hides_the_newest_items_or_a_random_draw():
    from ronghe.apps.recommend.recommender import _holdout

    # item k first appears at time 10 * k (items 7 and 3 tie at 70: the higher position goes)
    base = pd.DataFrame({"user": [0, 1, 0, 1, 2, 2, 0, 1, 2],
                         "item": [5, 5, 1, 2, 7, 3, 4, 0, 6],
                         "time": [50., 90., 10., 20., 70., 70., 40., 0., 60.]})
    seen = np.unique(base["item"])
    rng = np.random.default_rng(0)
    assert sorted(_holdout(base, seen, 3, "newest", rng)) == [3, 6, 7]
    assert sorted(_holdout(base, seen, 2, "newest", rng)) == [3, 7]
    assert len(_holdout(base, seen, 0, "newest", rng)) == 0
    draws = {tuple(sorted(_holdout(base, seen, 3, "random", np.random.default_rng(s))))
             for s in range(8)}
    assert len(draws) > 1 and all(set(d) <= set(seen) for d in draws)


def test_cold_items_join_the_candidates_by_text_and_mf():
    from ronghe.apps.recommend import ranker as rk

    n = 12
    warm = np.r_[np.arange(8, 0, -1), np.zeros(4)]  # items 0..7 lead every signal
    scores = {"popularity": warm.copy(), "cooccurrence": warm.copy(), "mf": warm + 3,
              "text": warm + 1}
    scores["text"][[9, 10]] = [0.9, 0.1]  # among the cold items 8..11, 9 is the text's best
    scores["mf"][[11, 8]] = [2.0, 1.0]  # and 11 the MF's, then 8
    cold = np.array([8, 9, 10, 11])
    plain = rk.candidates(scores, np.zeros(0, np.int64), np.array([0]), 3)
    assert not set(plain) & {8, 9}
    got = rk.candidates(scores, np.zeros(0, np.int64), np.array([0, 11]), 3, cold=cold,
                        per_cold=1)
    assert {9, 8} <= set(got) and 0 not in got and 11 not in got  # seen items stay out


def test_the_fitted_ranker_sees_new_items_as_candidates(rec):
    report = rec.metrics_["ranker"]
    assert report["cold_holdout_by"] == "random"  # as asked (conftest)
    assert 0 <= report["groups_cold_positive"] <= report["groups_train"] + report["groups_valid"]
    gain = report["feature_gain_share"]
    assert list(gain) == rec.feature_names_ and abs(sum(gain.values()) - 1) < 1e-3
    new = {rec.item_pos_[f"{t}-new"] for t in ("space", "romance", "cooking", "football")}
    for user in ("u-space-1", "u-cooking-2"):
        cand = set(rec.rank(user)[0].tolist())
        assert rec.item_pos_[user.split("-")[1] + "-new"] in cand & new


def test_an_unknown_cold_holdout_rule_is_refused():
    from ronghe.apps.recommend import Recommender
    from ronghe.errors import ConfigError

    with pytest.raises(ConfigError, match="cold_holdout_by"):
        Recommender(cold_holdout_by="oldest")


def test_new_arrival_places_put_the_best_new_items_at_the_end_of_the_top_10():
    full = np.r_[np.arange(20, 0, -1.0), 0.5, 0.7, 0.1, -np.inf]  # items 20..22 new, 23 seen
    cold = np.zeros(24, bool)
    cold[20:24] = True
    out = with_new_places(full, cold, 2)
    order = np.argsort(-out, kind="stable")
    assert list(order[:10]) == [0, 1, 2, 3, 4, 5, 6, 7, 21, 20]
    assert list(order[10:12]) == [8, 9] and out[23] == -np.inf and np.isfinite(out[22])
    # a new item the ranker already placed keeps its place and counts as one of the places
    cold[3] = True
    assert (with_new_places(full, cold, 1) == full).all()
    order = np.argsort(-with_new_places(full, cold, 2), kind="stable")
    assert list(order[:10]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 21]
    # a float32 ranking far below zero (the recommender puts non-candidates near -1e6) keeps
    # its order: shifting it in float32 would make close scores ties
    low = (np.r_[np.arange(20, 0, -1.0) * 1e-3, 0.5e-3, -1e6].astype(np.float32))
    cold = np.zeros(22, bool)
    cold[20] = True
    out = with_new_places(low, cold, 1)
    assert len(set(out[:9].tolist())) == 9 and list(np.argsort(-out)[:10]) == [*range(9), 20]
    # a tie at the edge of the kept top is cut in order (as served: the new item gets its
    # place); ties inside the top and in the rest stay ties for the evaluation's average place
    tied = np.r_[np.full(12, 1.0), 0.5, -np.inf]
    cold = np.zeros(14, bool)
    cold[12] = True
    out = with_new_places(tied, cold, 2)
    assert list(np.argsort(-out, kind="stable")[:10]) == [*range(9), 12]
    assert len(set(out[:9])) == 1 and len(set(out[9:12])) == 1 and out[9] < out[12] < out[0]


def test_served_lists_keep_places_for_new_items_and_evaluation_measures_the_same(rec, shop):
    """recommend(new_places=2): at least two items without interactions in the list - those
    the ranker put there keep their places, the rest come after the ranker's best warm items;
    the evaluation's fused+2new method is that policy over the whole catalogue."""
    from ronghe.errors import ConfigError

    user = "u-space-1"
    plain = rec.recommend(user, 10, reasons=False)
    placed = rec.recommend(user, 10, reasons=False, new_places=2)
    have = sum(r["cold"] for r in plain)
    assert have < 2  # this user's plain list lacks new items (else the policy changes nothing)
    keep = 10 - (2 - have)
    assert [r["item"] for r in placed[:keep]] == [r["item"] for r in plain[:keep]]
    assert sum(r["cold"] for r in placed) == 2 and all(r["cold"] for r in placed[keep:])
    cand, s, *_ = rec.rank(user)
    cold = rec.signals_.counts[cand] == 0
    best_new = [rec.item_ids_[p] for p in cand[cold][np.argsort(-s[cold], kind="stable")]]
    shown = {r["item"] for r in plain}
    assert [r["item"] for r in placed[keep:]] == [i for i in best_new if i not in shown][:2 - have]
    assert rec.recommend(user, 10, reasons=False, new_places=have) == plain
    with pytest.raises(ConfigError, match="new_places"):
        rec.recommend(user, 3, new_places=4)
    report = ev.evaluate(rec, shop["test"], history_1=False, new_places=[2, 1])
    assert {"fused+1new", "fused+2new"} <= set(report["methods"])
    assert "| fused+2new |" in ev.markdown(report)


def test_new_places_auto_is_chosen_on_validation_inside_the_training_data(shop):
    """new_places=auto: a recommender fitted without each user's last interaction and without
    the newest items measures new vs warm HR@10 per number of places; the fewest places that
    reach the target are served (and reloaded); with too few held-out cases on new items it
    keeps none and says why."""
    from ronghe.apps.recommend import Recommender

    curve = [{"new_places": 0, "warm_hr@10": 0.2, "new_hr@10": 0.0},
             {"new_places": 1, "warm_hr@10": 0.19, "new_hr@10": 0.05},
             {"new_places": 2, "warm_hr@10": 0.18, "new_hr@10": 0.09},
             {"new_places": 3, "warm_hr@10": 0.17, "new_hr@10": 0.12}]
    assert fewest_new_places(curve, 0.5) == 2
    assert fewest_new_places(curve, 0.25) == 1
    assert fewest_new_places(curve, 0.0) == 0
    assert fewest_new_places(curve, 0.9) is None
    opts = {**OPTIONS, "new_places": "auto", "cold_holdout": 0.3, "new_target": 0.35}
    auto = Recommender(**opts).fit(shop["train"], shop["items"])
    m = auto.metrics_["new_places"]
    assert m["by"] == "auto" and m["new_cases"] >= 10 and m["warm_cases"] > 0
    assert [c["new_places"] for c in m["curve"]] == list(range(auto.config.new_places_max + 1))
    rule = fewest_new_places(m["curve"], 0.35)
    assert auto.new_places_ == m["chosen"] == (auto.config.new_places_max if rule is None
                                                else rule)
    assert auto.new_places_ > 0  # the shop's newest items are rarely in a plain top 10
    for user in ("u-space-1", "u-cooking-4", "u-football-9"):
        assert sum(r["cold"] for r in auto.recommend(user, 10, reasons=False)) >= \
            auto.new_places_
    # a shorter or longer list keeps the same share of its places for new items
    assert auto.default_places(5) == round(auto.new_places_ / 2)
    assert auto.default_places(20) == 2 * auto.new_places_
    few = Recommender(**{**OPTIONS, "new_places": "auto"}).fit(shop["train"], shop["items"])
    assert few.new_places_ == 0 and few.metrics_["new_places"]["new_cases"] < 10
    assert any("too few to measure" in n for n in few.notes_)


def test_new_places_from_the_config_are_served_and_evaluated_as_served(shop, tmp_path):
    """new_places=2 in the config: every served list holds two items without interactions,
    the evaluation's ``served`` method is the fused+2new policy, and the bundle keeps it."""
    from ronghe.apps.recommend import Recommender

    two = Recommender(**{**OPTIONS, "new_places": 2}).fit(shop["train"], shop["items"])
    assert two.new_places_ == 2 and two.metrics_["new_places"]["by"] == "config"
    for user in ("u-space-1", "u-cooking-4", "u-football-9"):
        assert sum(r["cold"] for r in two.recommend(user, 10, reasons=False)) >= 2
    report = ev.evaluate(two, shop["test"], history_1=False, new_places=[2])
    assert report["methods"]["served"] == report["methods"]["fused+2new"]
    again = load(two.save(tmp_path / "two"))
    assert again.new_places_ == 2 and again.default_places(5) == 2  # a number: as given
    assert again.recommend("u-space-1", 10) == two.recommend("u-space-1", 10)
