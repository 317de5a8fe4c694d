"""``onnx`` for NER: a fine-tuned tagger (``finetune``, ``lora``, with or without its CRF) exported
to ONNX and run by onnxruntime, and the export recipe ``compression/export.py`` calls for NER.

The ONNX graph is the encoder and the token head: ``input_ids, attention_mask -> emissions``
(batch x sub-words x tags), with dynamic batch and sequence axes. Everything around it runs
here without torch or transformers: words become sub-word windows exactly as in training
(``subwords.py``, on the ``tokenizers`` library's copy of the tokenizer), each word takes its
scores from its most central window, and the sentence is decoded by softmax + argmax or, with a
CRF, by Viterbi under the BIO constraints, with marginals (forward-backward) as confidences - in
numpy, float64. ``parity`` compares the exported emissions with the torch tagger's and the tags
both decode.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ..batching import length_grouped_batches, pad
from ..bundle import BundleReader, State
from ..config import StrategyConfig
from ..errors import BundleError, ConfigError
from ..log import info
from ..runtime.onnx import Exported, session
from .base import NerStrategy, bio_allowed
from .crf import valid_bio
from .subwords import SubwordWindows, best_window_emissions

NEG = -1e4  # a forbidden move's score, as in crf_layer
SAMPLE = ["Angela Merkel flew to Vienna on Monday to meet Sebastian Kurz .",
          "Shares of Nokia fell 3 % in Helsinki after the Reuters report .",
          "The European Union and the United Nations met in Geneva .",
          "John Smith works for Acme Corporation in New York .",
          "Nothing to see here", "郑凯昨天去了厦门。", "招商银行总部位于深圳市福田区。",
          "李明在北京大学读书，毕业后加入了华为公司。"]


class OnnxTaggerConfig(StrategyConfig):
    max_length: int = Field(128, ge=8, description="sub-words per window, special tokens included")
    stride: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=1, description="windows per onnxruntime call")
    crf: bool = False
    pieces: Literal["words", "text"] = Field("words", description="how words became sub-words "
                                             "in training (see subwords.py)")
    source_strategy: str = Field("finetune", description="what the model was exported from")
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads; 0 = OMP_NUM_THREADS "
                                              "if set, else the usable cores")


class FastTokenizer:
    """The few calls ``SubwordWindows`` makes of a transformers tokenizer, on a ``tokenizers``
    ``Tokenizer`` (the same backend a transformers fast tokenizer runs)."""

    def __init__(self, tokenizer, unk_token_id: int | None):
        self.tok = tokenizer
        self.tok.no_padding()
        self.tok.no_truncation()
        self.unk_token_id = unk_token_id

    def __call__(self, text, add_special_tokens: bool = True,
                 return_offsets_mapping: bool = False) -> dict:
        if isinstance(text, str):
            enc = self.tok.encode(text, add_special_tokens=add_special_tokens)
            if return_offsets_mapping:
                return {"input_ids": enc.ids, "offset_mapping": enc.offsets}
            return {"input_ids": enc.ids}
        return {"input_ids": [e.ids for e in self.tok.encode_batch(
            list(text), add_special_tokens=add_special_tokens)]}

    def get_vocab(self) -> dict:
        return self.tok.get_vocab()

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self.tok.token_to_id(token)


# --------------------------------------------------------------------------- decoding (numpy)

def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def crf_decode(em: np.ndarray, trans: np.ndarray, start: np.ndarray,
               end: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Viterbi path and per-position marginals of one sentence (``em``: words x tags), with the
    (already constrained) transition, start and end scores."""
    em = em.astype(np.float64)
    k, n = em.shape
    score, back = start + em[0], []
    for j in range(1, k):
        cand = score[:, None] + trans
        back.append(cand.argmax(0))
        score = cand.max(0) + em[j]
    path = [int((score + end).argmax())]
    for idx in reversed(back):
        path.append(int(idx[path[-1]]))
    path.reverse()
    alpha = np.empty((k, n))
    alpha[0] = start + em[0]
    for j in range(1, k):
        alpha[j] = _logsumexp(alpha[j - 1][:, None] + trans, 0) + em[j]
    beta = np.empty((k, n))
    beta[-1] = end
    for j in range(k - 2, -1, -1):
        beta[j] = _logsumexp(trans + (em[j + 1] + beta[j + 1])[None, :], 1)
    log_z = _logsumexp(alpha[-1] + end, 0)
    return path, np.exp(alpha + beta - log_z)


def softmax_decode(em: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = em.astype(np.float64)
    z -= z.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    return p.argmax(1), p


# --------------------------------------------------------------------------- the strategy

class OnnxTagger(Exported, NerStrategy):
    Config = OnnxTaggerConfig

    def emissions(self, windows) -> list[np.ndarray]:
        out: list = [None] * len(windows)
        for idx in length_grouped_batches([len(w.ids) for w in windows], self.config.batch_size,
                                          None):
            input_ids, mask = pad([windows[i].ids for i in idx], self.pad_id)
            em = self.session.run(["emissions"], {"input_ids": input_ids,
                                                  "attention_mask": mask})[0]
            for r, i in enumerate(idx):
                out[i] = windows[i].pick(em[r, windows[i].positions], len(self.tags))
        return out

    def sentence_emissions(self, tokens: list[list[str]]) -> list[np.ndarray]:
        wins = self.windows.windows(tokens)
        return best_window_emissions(tokens, wins, self.emissions(wins), len(self.tags))

    def predict(self, tokens: list[list[str]]) -> tuple[list[list[str]], list[list[float]]]:
        tags, conf = [], []
        for em in self.sentence_emissions(tokens):
            if not len(em):
                tags.append([])
                conf.append([])
                continue
            if self.crf is None:
                best, p = softmax_decode(em)
                tags.append(valid_bio([self.tags[k] for k in best]))
            else:
                best, p = crf_decode(em, *self.crf)
                tags.append([self.tags[k] for k in best])
            conf.append([float(p[j, k]) for j, k in enumerate(best)])
        return tags, conf

    def to_state(self) -> State:
        return State(meta=dict(self.meta), arrays=dict(self.crf_arrays),
                     files={"model.onnx": self.onnx_bytes,
                            "tokenizer/tokenizer.json": self.tokenizer_json})

    @classmethod
    def build(cls, config: OnnxTaggerConfig, tags: list[str], onnx_bytes: bytes,
              tokenizer_json: bytes, meta: dict, crf_arrays: dict) -> "OnnxTagger":
        from tokenizers import Tokenizer

        self = cls(config, tags)
        self.onnx_bytes, self.tokenizer_json = onnx_bytes, tokenizer_json
        self.meta = {**meta, "tags": list(tags)}
        self.pad_id = int(meta.get("pad_id", 0))
        self.crf_arrays = crf_arrays
        self.crf = None
        if config.crf:
            if set(crf_arrays) != {"crf.transitions", "crf.start", "crf.end"}:
                raise BundleError("an ONNX CRF tagger needs crf.transitions, crf.start and "
                                  f"crf.end in arrays.safetensors, found {sorted(crf_arrays)}")
            allowed, allowed_start = bio_allowed(self.tags)
            trans = np.where(allowed, crf_arrays["crf.transitions"].astype(np.float64), NEG)
            start = np.where(allowed_start, crf_arrays["crf.start"].astype(np.float64), NEG)
            self.crf = (trans, start, crf_arrays["crf.end"].astype(np.float64))
        self.session = session(onnx_bytes, config.threads)
        tokenizer = FastTokenizer(Tokenizer.from_str(tokenizer_json.decode()),
                                  meta.get("unk_token_id"))
        self.windows = SubwordWindows(tokenizer, config.max_length, config.stride, config.pieces)
        return self

    @classmethod
    def from_state(cls, config, tags, backbone, reader: BundleReader) -> "OnnxTagger":
        model, tj = reader.path("model.onnx"), reader.path("tokenizer/tokenizer.json")
        if not model.is_file() or not tj.is_file():
            raise BundleError(f"{reader.root}: model.onnx or tokenizer/tokenizer.json is missing")
        return cls.build(config, tags, model.read_bytes(), tj.read_bytes(), reader.meta,
                         reader.arrays())


# --------------------------------------------------------------------------- the export recipe

def network(clf):
    """The fitted torch tagger of a ``TokenClassifier``, or a clear refusal."""
    inner = clf.strategy_
    if getattr(inner, "model", None) is None or not hasattr(inner, "windows"):
        raise ConfigError(f"only fine-tuned NER taggers (finetune, lora) can be exported or "
                          f"compressed, not '{clf.strategy}'" + (
                              ": the CRF on hand-made features runs without torch already"
                              if clf.strategy == "classic" else ""))
    if hasattr(inner.model.encoder, "peft_config"):
        raise ConfigError(f"a '{clf.strategy}' tagger cannot be exported: its adapter is not merged")
    return inner


def onnx_bytes(inner, opset: int = 17, fuse: bool = True) -> bytes:
    from ..compression.export import graph_bytes

    ids = [w.ids for w in inner.windows.windows([["a", "short", "example"], ["another", "one", "."]])]
    return graph_bytes(inner.model, ids, inner.pad_id, "emissions", {0: "batch", 1: "sequence"},
                       opset, fuse)


def as_onnx(clf, data: bytes | None = None, *, inner=None, note: dict | None = None):
    """The ``TokenClassifier`` rebuilt around an ``onnx`` tagger running ``data`` (ONNX bytes;
    by default the export of ``clf``'s network)."""
    inner = inner or network(clf)
    data = data or onnx_bytes(inner)
    c = inner.config
    crf = inner.model.crf
    arrays = {}
    if crf is not None:
        trans, start, end = (t.detach().cpu().numpy() for t in crf.scores(constrained=False))
        arrays = {"crf.transitions": trans, "crf.start": start, "crf.end": end}
    cfg = OnnxTaggerConfig(max_length=c.max_length, stride=c.stride, crf=crf is not None,
                           pieces=inner.pieces, source_strategy=clf.strategy, seed=c.seed)
    tok = inner.tokenizer
    meta = {"source_strategy": clf.strategy, "pad_id": inner.pad_id,
            "unk_token_id": tok.unk_token_id, **(note or {})}
    tagger = OnnxTagger.build(cfg, inner.tags, data, tok.backend_tokenizer.to_str().encode(),
                              meta, arrays)
    return clf.with_strategy(tagger, {"strategy": "onnx", "seed": clf.seed,
                                      "scheme": clf.scheme})


def sample_inputs() -> list[str]:
    return list(SAMPLE)


def _tokens(texts) -> list[list[str]]:
    from .data import from_texts

    return from_texts(list(texts)).tokens


def calibration(inner, texts: list[str]) -> list[dict]:
    """Padded batches of sub-word windows of real sentences, for static int8 calibration."""
    from ..batching import token_feeds

    return token_feeds([w.ids for w in inner.windows.windows(_tokens(texts))], inner.pad_id)


def parity(reference, candidate, texts: list[str]) -> dict:
    """Max abs difference of the emissions and the share of tokens tagged alike."""
    texts = list(texts)[:512]
    tokens = [t for t in _tokens(texts) if t]
    a = reference.strategy_.sentence_emissions(tokens)
    b = candidate.strategy_.sentence_emissions(tokens)
    ta, _ = reference.strategy_.predict(tokens)
    tb, _ = candidate.strategy_.predict(tokens)
    n = sum(len(t) for t in tokens)
    same = sum(x == y for s, r in zip(ta, tb) for x, y in zip(s, r))
    out = {"inputs": len(texts), "max_abs_emissions_diff":
           float(max((np.abs(x - y).max() for x, y in zip(a, b) if len(x)), default=0.0)),
           "tag_agreement": same / max(n, 1)}
    info("parity on %d sentences: max |emission diff| %.2e, tag agreement %.4f", len(texts),
         out["max_abs_emissions_diff"], out["tag_agreement"])
    return out
