"""A small Chinese FAQ end to end with the multilingual me5-small backbone: build, reply,
save, load (slow: the backbone is converted on first use and is 4x MiniLM's size)."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

INTENTS = {
    "查询余额": ["我的余额是多少", "帮我查一下账户余额", "卡里还有多少钱", "查询余额",
             "账户里还剩多少钱", "看看我的余额"],
    "挂失": ["我的卡丢了", "银行卡被偷了", "我要挂失银行卡", "卡找不到了怎么办",
           "请冻结我丢失的卡", "钱包和卡都丢了"],
    "转账": ["我想给朋友转账", "怎么转账", "给我妈妈转五百块", "如何汇款到别的银行",
           "转账手续怎么办", "我要把钱转到另一个账户"],
}
FAQ = [("营业时间", ["你们几点开门", "营业时间是什么时候", "周末营业吗"], "工作日 9:00-17:00 营业。"),
       ("手机银行", ["怎么下载手机银行", "有没有手机应用", "手机银行在哪里下载"],
        "请在应用商店搜索我们的手机银行。")]
OOS = ["今天天气怎么样", "给我讲个笑话", "附近有什么好吃的饭店", "帮我订一张去北京的机票",
       "珠穆朗玛峰有多高", "播放一首歌", "谁赢了昨天的足球比赛", "怎么做红烧肉"]


def test_chinese_faq_with_me5_small(tmp_path):
    from ronghe.apps.assist import build, load

    rows = [{"text": t, "intent": i} for i, ts in INTENTS.items() for t in ts]
    pd.DataFrame(rows).to_csv(tmp_path / "intents.csv", index=False)
    pd.DataFrame([{"id": i, "question": q, "answer": a} for i, qs, a in FAQ for q in qs]
                 ).to_csv(tmp_path / "faq.csv", index=False)
    pd.DataFrame({"text": OOS}).to_csv(tmp_path / "oos.csv", index=False)
    bot = build(tmp_path / "intents.csv", tmp_path / "faq.csv", oos=tmp_path / "oos.csv",
                model="me5-small", candidates=["classic", "frozen"])
    assert bot.backbone_.ref == "me5-small"
    r = bot.reply("我的银行卡丢了，快帮我冻结")
    assert r["kind"] == "intent" and r["intent"] == "挂失", r["why"]
    r = bot.reply("周六你们开门吗")
    assert r["kind"] == "faq" and r["faq_id"] == "营业时间", r["why"]
    r = bot.reply("明天会下雨吗")
    assert r["handoff"] is True, r["why"]
    again = load(bot.save(tmp_path / "zh"))
    assert again.reply("手机银行怎么下载")["faq_id"] == "手机银行"
