"""Write the bundles in ``legacy/`` with the ronghe of the time, and what they predicted.

Run once, with the code whose bundle format must keep loading (here: main before the task-shape
refactor, commit 77ab97c), from the repository root::

    python tests/data/bundles/make_legacy.py

Its output is committed: ``tests/test_legacy_bundles.py`` loads each bundle with today's code and
checks that it predicts what it predicted when it was written (``expected.json``). The network
bundles run on a tiny BERT (2 layers, hidden size 32, a 400-piece WordPiece vocabulary trained
here) so that the folder stays small; ``frozen`` and ``ia3`` reference the packaged MiniLM by
sha256, as real bundles do.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from makers import make_sentiment  # noqa: E402

OUT = HERE / "legacy"
NER = ROOT / "tests" / "data" / "ner"
TEXTS = ["a wonderful, moving film", "boring and far too long", "i loved it honestly",
         "the plot makes no sense (3)", "superb, but a tedious waste of time"]
NER_TEXTS = ["Angela Merkel flew to Vienna on Monday .", "Shares of Nokia fell sharply .",
             "Nothing to see here"]


def tiny_backbone(folder: Path) -> Path:
    """A randomly initialised 2-layer BERT with a small WordPiece vocabulary (safetensors)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    corpus = list(make_sentiment(48)["text"]) + (NER / "en_train.conll").read_text().split()
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(
        vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


def main() -> None:
    import numpy as np
    import torch

    import ronghe
    from ronghe import TextClassifier
    from ronghe.compression.export import as_onnx
    from ronghe.ner import TokenClassifier

    torch.set_num_threads(1)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    work = HERE / ".work"
    shutil.rmtree(work, ignore_errors=True)
    tiny = str(tiny_backbone(work / "tiny-bert"))
    train, valid = make_sentiment(24, seed=0), make_sentiment(8, seed=1)
    fast = {"epochs": 2, "max_length": 32, "batch_size": 8}
    text = {
        "text-classic": TextClassifier(strategy="classic"),
        "text-frozen": TextClassifier(strategy="frozen", max_length=32),
        "text-ia3": TextClassifier(strategy="ia3", **fast),
        "text-finetune": TextClassifier(strategy="finetune", model=tiny, **fast),
        "text-weighted": TextClassifier(strategy="weighted", options={
            "model": tiny, "member_options": {"finetune": fast}}),
    }
    expected: dict = {"written_by": ronghe.__version__, "texts": TEXTS, "ner_texts": NER_TEXTS,
                      "bundles": {}}
    for name, clf in text.items():
        clf.fit(train, valid)
        clf.save(OUT / name)
        expected["bundles"][name] = {"task": "text-classification",
                                     "labels": list(map(str, clf.predict(TEXTS))),
                                     "proba": np.round(clf.predict_proba(TEXTS), 7).tolist()}
    onnx = as_onnx(text["text-finetune"])
    onnx.save(OUT / "text-onnx")
    expected["bundles"]["text-onnx"] = {"task": "text-classification",
                                        "labels": list(map(str, onnx.predict(TEXTS))),
                                        "proba": np.round(onnx.predict_proba(TEXTS), 7).tolist()}
    ner_train = NER / "en_train.conll"
    for name, clf in {"ner-classic": TokenClassifier(strategy="classic"),
                      "ner-finetune-crf": TokenClassifier(strategy="finetune", model=tiny,
                                                          crf=True, epochs=8, max_length=32,
                                                          learning_rate=3e-3)}.items():
        clf.fit(ner_train)
        clf.save(OUT / name)
        expected["bundles"][name] = {"task": "token-classification",
                                     "entities": clf.predict(NER_TEXTS)}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    shutil.rmtree(work)
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {len(expected['bundles'])} bundles to {OUT} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
