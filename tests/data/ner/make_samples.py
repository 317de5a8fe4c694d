#!/usr/bin/env python
"""Make the project's small NER samples (seeded, so the output is always the same).

    python tests/data/ner/make_samples.py            # rewrites the files below in this folder

* ``zh_train.bmes`` / ``zh_test.bmes``: short Chinese sentences, one character per line with its
  BMES tag (``B-``/``M-``/``E-`` for the first/middle/last character of an entity, ``S-`` for a
  one-character entity, ``O`` outside), types PER, LOC, ORG. Test sentences use person, place and
  organisation names that never occur in the training file, so a model must generalise from
  context and character patterns rather than memorise names.
* ``en_train.conll`` / ``en_test.conll``: the same idea in English (IOB2, token + tag columns).

Written by the ronghe project from the templates and name lists below (common Chinese given
names/surnames, major cities, well-known institutions); no corpus was copied. Same license as
the project (Apache-2.0).
"""

from __future__ import annotations

import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

ZH = {
    "train": {
        "PER": ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴刚",
                "徐丽", "孙浩", "马超", "朱红", "胡军", "郭涛", "林峰", "何雪", "高翔", "罗琳"],
        "LOC": ["北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "重庆",
                "天津", "苏州", "长沙", "青岛"],
        "ORG": ["清华大学", "北京大学", "中国银行", "华为公司", "阿里巴巴", "腾讯公司", "复旦大学",
                "国家电网", "人民日报", "中国移动", "浙江大学"],
    },
    "test": {
        "PER": ["郑凯", "谢婷", "韩梅", "唐亮", "冯雨", "许强", "邓华", "曹阳", "彭宇", "蒋琴"],
        "LOC": ["厦门", "昆明", "大连", "沈阳", "哈尔滨", "福州", "济南", "兰州"],
        "ORG": ["南开大学", "招商银行", "小米公司", "新华社", "武汉大学", "中国石化"],
    },
}
ZH_TEMPLATES = [
    "{PER}昨天去了{LOC}。", "{PER}在{ORG}工作了三年。", "{ORG}总部位于{LOC}。",
    "{PER}和{PER2}一起参观了{LOC}的博物馆。", "来自{LOC}的{PER}加入了{ORG}。",
    "{ORG}今天在{LOC}召开了新闻发布会。", "记者{PER}报道，{LOC}今年的降雨量明显增加。",
    "{PER}毕业于{ORG}，现在住在{LOC}。", "据{ORG}消息，{PER}将于下周访问{LOC}。",
    "{LOC}的天气很好，{PER}决定出去散步。", "我们下个月要去{LOC}旅游。", "今天的会议由{PER}主持。",
    "{ORG}发布了新的年度报告。", "{PER}说他很喜欢{LOC}的美食。", "{PER}向{ORG}捐赠了一批图书。",
    "这家公司的产品很受欢迎。", "{LOC}和{LOC2}之间开通了高铁。", "{PER}是{ORG}的一名教授。",
    "{ORG}与{ORG2}签署了合作协议。", "昨天晚上下了一场大雨。",
]

EN = {
    "train": {
        "PER": ["John Smith", "Mary Jones", "Peter Brown", "Angela Merkel", "David Miller",
                "Sarah Wilson", "James Taylor", "Laura Davis", "Tom", "Anna"],
        "LOC": ["London", "Paris", "Berlin", "New York", "Tokyo", "Madrid", "Chicago", "Rome"],
        "ORG": ["Google", "the United Nations", "Reuters", "Acme Corp", "Oxford University",
                "the World Bank", "Siemens"],
    },
    "test": {
        "PER": ["Robert King", "Emma Clark", "Lucas", "Nina Hart", "Oscar Lee"],
        "LOC": ["Vienna", "Boston", "Lisbon", "Cairo", "Sydney"],
        "ORG": ["Microsoft", "the Red Cross", "Nokia", "Harvard University"],
    },
}
EN_TEMPLATES = [
    "{PER} flew to {LOC} on Monday .", "{PER} works for {ORG} in {LOC} .",
    "{ORG} opened an office in {LOC} .", "{PER} met {PER2} in {LOC} last week .",
    "A spokesman for {ORG} said profits rose .", "{PER} , a director at {ORG} , resigned .",
    "Shares of {ORG} fell sharply on Tuesday .", "The weather in {LOC} was cold .",
    "{PER} said {ORG} would hire more staff in {LOC} .", "Talks between {ORG} and {ORG2} ended .",
    "Prices rose again this year .", "{PER} will visit {LOC} and {LOC2} next month .",
]


def _fill(template: str, names: dict, rng: random.Random) -> list[tuple[str, str | None]]:
    """The sentence as (piece, type) parts: literal text has type None."""
    parts, rest = [], template
    chosen: dict[str, str] = {}
    while "{" in rest:
        pre, rest = rest.split("{", 1)
        slot, rest = rest.split("}", 1)
        typ = slot.rstrip("2")
        options = [n for n in names[typ] if n not in chosen.values()]
        chosen[slot] = rng.choice(options)
        if pre:
            parts.append((pre, None))
        parts.append((chosen[slot], typ))
    if rest:
        parts.append((rest, None))
    return parts


def zh_sentence(parts) -> list[tuple[str, str]]:
    rows = []
    for piece, typ in parts:
        chars = list(piece)
        for j, ch in enumerate(chars):
            if typ is None:
                tag = "O"
            elif len(chars) == 1:
                tag = f"S-{typ}"
            else:
                tag = f"{'B' if j == 0 else 'E' if j == len(chars) - 1 else 'M'}-{typ}"
            rows.append((ch, tag))
    return rows


def en_sentence(parts) -> list[tuple[str, str]]:
    rows = []
    for piece, typ in parts:
        for j, tok in enumerate(piece.split()):
            if typ is None or tok == "the":
                tag = "O"
            else:
                tag = f"{'B' if not rows or not rows[-1][1].endswith(typ) or j == 0 else 'I'}-{typ}"
            rows.append((tok, tag))
    return rows


def make(kind: str, split: str, n: int, seed: int) -> list[list[tuple[str, str]]]:
    rng = random.Random(seed)
    names, templates = (ZH, ZH_TEMPLATES) if kind == "zh" else (EN, EN_TEMPLATES)
    to_rows = zh_sentence if kind == "zh" else en_sentence
    out = []
    for i in range(n):
        out.append(to_rows(_fill(templates[i % len(templates)], names[split], rng)))
    rng.shuffle(out)
    return out


def write(path: Path, sentences) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for s in sentences:
            fh.write("".join(f"{tok} {tag}\n" for tok, tag in s) + "\n")


def main() -> None:
    write(HERE / "zh_train.bmes", make("zh", "train", 80, seed=1))
    write(HERE / "zh_test.bmes", make("zh", "test", 40, seed=2))
    write(HERE / "en_train.conll", make("en", "train", 72, seed=3))
    write(HERE / "en_test.conll", make("en", "test", 24, seed=4))


if __name__ == "__main__":
    main()
