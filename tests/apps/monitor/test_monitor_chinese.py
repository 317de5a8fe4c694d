"""Chinese financial text end to end: a Chinese sentiment bundle (classic, character n-grams; or
frozen multilingual-e5-small embeddings + logistic regression) and a Chinese NER bundle (CRF)
trained here on made-up sentences; companies (ORG) found by the
NER bundle become watch keys, and a surge of negative news about one company raises an alert
on that company with Chinese evidence."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from ronghe.apps.monitor import Monitor
from ronghe.apps.monitor import storage as T
from ronghe.apps.monitor.config import build

ORGS = ["招商银行", "平安银行", "贵州茅台", "腾讯控股", "中国石油", "万科集团"]
PEOPLE = ["王磊", "李娜", "张伟", "陈静"]
GOOD = ["股价大涨", "业绩超预期", "利润大幅增长", "获得机构增持", "分红创新高", "评级上调"]
BAD = ["股价暴跌", "亏损扩大", "遭监管调查", "被处以罚款", "债务违约", "评级下调"]
LEAD = ["据报道，", "今日", "消息称", "分析师认为", ""]


def sentence(org: str, tone: str, rng: random.Random, person: bool = False) -> tuple[str, list]:
    lead = rng.choice(LEAD)
    text = lead + org + rng.choice(GOOD if tone == "pos" else BAD)
    ents = [{"start": len(lead), "end": len(lead) + len(org), "label": "ORG"}]
    if person:
        p = rng.choice(PEOPLE)
        ents.append({"start": len(text) + 1, "end": len(text) + 1 + len(p), "label": "PER"})
        text += "，" + p + "表示。"
    else:
        text += "。"
    return text, ents


@pytest.fixture(scope="module", params=["classic", "frozen-me5-small"])
def zh_bundles(request, tmp_path_factory):
    import pandas as pd

    from ronghe import TextClassifier
    from ronghe.ner import TokenClassifier

    d = tmp_path_factory.mktemp("zh")
    rng = random.Random(0)
    rows, ner = [], []
    for i in range(240):
        tone = "pos" if i % 2 else "neg"
        text, ents = sentence(ORGS[i % len(ORGS)], tone, rng, person=i % 3 == 0)
        rows.append({"text": text, "label": "正面" if tone == "pos" else "负面"})
        ner.append({"text": text, "entities": ents})
    strategy = ({"strategy": "classic"} if request.param == "classic"
                else {"strategy": "frozen", "model": "me5-small"})
    TextClassifier(**strategy).fit(pd.DataFrame(rows)).save(d / "sentiment")
    TokenClassifier(strategy="classic").fit(ner).save(d / "ner")
    return {"sentiment": str(d / "sentiment"), "ner": str(d / "ner")}


def test_company_entities_are_keys_and_a_company_surge_alerts(zh_bundles, tmp_path):
    cfg = build({"db": str(tmp_path / "zh.sqlite"),
                 "models": {"sentiment": zh_bundles["sentiment"], "ner": zh_bundles["ner"]},
                 "rules": [{"key": "entity", "min_count": 60, "window": 40}]})
    m = Monitor(cfg)
    assert m.scorer.neg_cols == [m.scorer.labels.index("负面")]  # found by its name
    rng = random.Random(1)

    def items(n, start, bad_org=None):
        out = []
        for i in range(n):
            org = ORGS[i % 3]  # three companies in the stream
            tone = "neg" if rng.random() < (0.8 if org == bad_org else 0.2) else "pos"
            text, _ = sentence(org, tone, rng, person=i % 4 == 0)
            out.append(({"text": text, "time": start + i}, f"zh:{i}"))
        return out

    for i in range(0, 900, 100):
        assert not m.process(items(900, 1.7e9)[i:i + 100]).alerts
    with m.store.transaction() as c:
        keys = dict(c.execute(sa.select(T.keys.c.key, sa.func.count()).group_by(T.keys.c.key)).all())
        sample = c.execute(sa.select(T.items.c.entities).limit(1)).scalar()
    assert {f"entity=ORG:{o}" for o in ORGS[:3]} <= set(keys)
    assert all(keys[f"entity=ORG:{o}"] >= 290 for o in ORGS[:3])
    assert any(k.startswith("entity=PER:") for k in keys)
    assert sample and sample[0]["label"] == "ORG"
    out = m.process(items(300, 1.7e9 + 1000, bad_org="平安银行"))
    assert out.alerts
    with m.store.transaction() as c:
        alerts = c.execute(sa.select(T.alerts)).all()
    assert {a.key for a in alerts} == {"entity=ORG:平安银行"}
    ev = alerts[0].evidence
    assert ev and all("平安银行" in e["text"] and any(b in e["text"] for b in BAD) for e in ev)
