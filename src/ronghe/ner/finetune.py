"""``finetune`` (and ``lora``): a token-classification head on the backbone, decoded by a CRF
trained jointly (the BERT+CRF fusion; ``crf=False`` for a plain softmax per token).

The CRF is the default because it was worth more than any rate or schedule change measured
(``benchmarks/ner.py``, me5-small, 3,000 sentences, 1 epoch): test F1 on People's Daily (Chinese)
0.789 -> 0.842, where the softmax head produced many broken spans (an entity's first characters
without its last), and on CoNLL-2003 0.805 -> 0.840.

* Sub-words (``subwords.py``): each word is tokenised on its own; its label sits on its first
  sub-word and the other sub-words are ignored by the loss (label ``-100``). A word the tokenizer
  turns into nothing (a zero-width character) becomes the unknown token, so every word gets a
  prediction. Character-level data (``pieces=auto`` finds it: Chinese, one character per line)
  is tokenised as running text instead, and the head scores up to ``MAX_SLOTS`` tag sets per
  piece, one for each character the piece covers.
* Long sentences: the sub-words are cut into windows of ``max_length`` (special tokens included)
  that advance by ``stride`` sub-words (default: half a window), so every sub-word is in some
  window and no token is lost. Training uses every window. At prediction each word takes its
  emission scores from the window where its first sub-word is most central (the distance to the
  nearer window edge; the sentence's own start and end do not count as edges), then the whole
  sentence is decoded at once.
* Decoding: with the CRF (default), Viterbi under BIO constraints (``crf_layer.CRF``), which
  yields only valid sequences; with ``crf=False``, the argmax of the softmax (conlleval's reading
  of the result). Per-token confidence: the CRF marginal, or the softmax probability, of the
  chosen tag.
* Training: ``training.loop.Loop`` (AdamW, warm-up + linear decay, clipping, bf16 where fast,
  length-grouped batches, checkpoints/resume) with early stopping on validation entity F1 (strict,
  micro) and the best epoch's weights restored.
* ``lora``: PEFT LoRA adapters on the encoder (head and CRF train in full); after training the
  adapters are merged, so the bundle is the same self-contained kind as ``finetune``'s.

The bundle holds every weight (``model.safetensors``), the encoder config (``model/``) and the
tokenizer (``tokenizer/``): it loads without the original backbone folder.
"""

from __future__ import annotations

import json
import time
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from .. import backbones
from ..bundle import BundleReader, State
from ..config import EncoderConfig, TrainingFields
from ..errors import BundleError, ConfigError
from ..log import info, progress
from ..modeling import autocast, autocast_dtype, collate, length_grouped_batches, pick_device
from ..training import loop
from ..training.probe import fit_linear_head
from ..training.tracking import run_callbacks
from ..strategies.lora import LoraFields
from .base import NerStrategy
from .crf import valid_bio
from .crf_layer import CRF
from .subwords import SubwordWindows, Window, best_window_emissions, char_level
from .data import Sentences
from .metrics import entity_metrics

IGNORE = -100
MAX_SLOTS = 4  # tag sets per piece in pieces=text (characters beyond the 4th share the last)


class FinetuneConfig(EncoderConfig, TrainingFields):
    crf: bool = Field(True, description="decode with a CRF layer trained jointly (False: a "
                                        "softmax per token)")
    crf_lr_scale: float = Field(100.0, gt=0, description="CRF transitions learn this much faster")
    head_init: Literal["probe", "random"] = Field(
        "probe", description="probe: start the head from a logistic regression on the frozen "
                             "features (LP-FT); random: the usual small random init")
    stride: int | None = Field(None, ge=1, description="sub-words a window advances; default half a window")
    pieces: Literal["auto", "words", "text"] = Field(
        "auto", description="words: tokenise each word on its own; text: tokenise the sentence "
                            "as running text (for character-level data such as Chinese); auto: "
                            "text when >= 90% of the training words are single characters")
    # token batches are longer than sentence batches: smaller defaults than text's 32 / 128
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int = Field(64, ge=1)


class LoraConfig(FinetuneConfig, LoraFields):
    learning_rate: float = Field(5e-4, gt=0, lt=1, description="adapters train best at higher rates")
    epochs: int = Field(5, ge=1, le=1000)


class TokenModel(nn.Module):
    """encoder -> dropout -> linear emissions per sub-word (+ a CRF used by the loss and decoder)."""

    def __init__(self, encoder: nn.Module, tags: list[str], dropout: float = 0.1,
                 crf: bool = False, crf_lr_scale: float = 100.0, slots: int = 1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.slots = slots  # tag sets per sub-word: output j * len(tags) + t is slot j's tag t
        self.head = nn.Linear(encoder.config.hidden_size, len(tags) * slots)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.crf = CRF(tags, crf_lr_scale) if crf else None

    def forward(self, input_ids, attention_mask):
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return self.head(self.dropout(out.last_hidden_state))


def pack_labelled(em: torch.Tensor, y: torch.Tensor):
    """Move the labelled positions (``y != -100``) of each row to the front: compact emissions,
    tags and a prefix mask, as the CRF wants them."""
    mask = y != IGNORE
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices
    width = max(int(mask.sum(1).max()), 1)
    order = order[:, :width]
    em = em.gather(1, order.unsqueeze(2).expand(-1, -1, em.shape[2]))
    return em, y.gather(1, order).clamp(min=0), mask.gather(1, order)


class TokenLoss(nn.Module):
    """Cross-entropy on first sub-words, or the CRF's negative log-likelihood over them."""

    def __init__(self, model: TokenModel):
        super().__init__()
        self.model = model

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # slot j of sub-word i is row i * slots + j: in character order for the CRF
        logits = logits.reshape(logits.shape[0], -1, logits.shape[-1] // self.model.slots)
        y = y[:, :logits.shape[1]]
        if self.model.crf is None:
            return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                               ignore_index=IGNORE)
        em, tags, mask = pack_labelled(logits, y)
        return self.model.crf.nll(em, tags, mask).mean()


# --------------------------------------------------------------------------- the strategy

class FinetuneTagger(NerStrategy):
    name = "finetune"
    Config = FinetuneConfig
    uses_backbone = True
    trains_network = True

    def _setup(self, encoder, tokenizer, pieces: str = "words", slots: int = 1,
               windows: SubwordWindows | None = None) -> None:
        c = self.config
        self.device = pick_device(c.device)
        self.dtype = autocast_dtype(c.precision, self.device)
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id or 0
        self.pieces, self.slots = pieces, slots
        self.windows = windows or SubwordWindows(tokenizer, c.max_length, c.stride, pieces)
        self.model = TokenModel(encoder, self.tags, c.dropout, c.crf, c.crf_lr_scale,
                                slots).to(self.device)

    def _pieces(self, tokenizer, train: Sentences) -> str:
        """The resolved ``pieces`` mode."""
        pieces = self.config.pieces
        if pieces == "auto":
            pieces = "text" if char_level(train.tokens) else "words"
        if pieces == "text" and not getattr(tokenizer, "is_fast", False):
            if self.config.pieces == "text":
                raise ConfigError("pieces=text needs a fast tokenizer (tokenizer.json) for the "
                                  "character offsets; this backbone has a slow one - use "
                                  "pieces=words")
            pieces = "words"
        return pieces

    def _prepare_encoder(self, encoder):
        return encoder

    def _after_fit(self) -> None:
        pass

    def _training_rows(self, sents: Sentences,
                       wins: list[Window] | None = None) -> tuple[list[Window], np.ndarray]:
        """Windows (made here unless given) and their labels: row ``r``, column
        ``position * slots + slot``."""
        index = {t: i for i, t in enumerate(self.tags)}
        wins = self.windows.windows(sents.tokens) if wins is None else wins
        k = self.slots
        y = np.full((len(wins), self.config.max_length * k), IGNORE, dtype=np.int64)
        for r, w in enumerate(wins):
            tags = sents.tags[w.sentence]
            for p, j, s in zip(w.positions, w.words, w.slots):
                y[r, p * k + min(s, k - 1)] = index[tags[j]]
        return wins, y

    def fit(self, train: Sentences, valid: Sentences) -> "FinetuneTagger":
        c = self.config
        loop.set_seed(c.seed)
        encoder = self._prepare_encoder(backbones.load_encoder(self.backbone.path))
        tokenizer = backbones.load_tokenizer(self.backbone.path)
        pieces = self._pieces(tokenizer, train)
        windows = SubwordWindows(tokenizer, c.max_length, c.stride, pieces)
        wins = windows.windows(train.tokens)  # the head needs one tag set per slot they use
        slots = min(MAX_SLOTS, 1 + max((max(w.slots, default=0) for w in wins), default=0))
        self._setup(encoder, tokenizer, pieces, slots, windows)
        self.report["pieces"] = {"mode": pieces, "slots": slots}
        if pieces == "text":
            info("character-level data: sentences are tokenised as running text (%d tag sets "
                 "per piece)", slots)
        wins, y = self._training_rows(train, wins)
        ids = [w.ids for w in wins]
        counts = np.bincount([w.sentence for w in wins], minlength=len(train))
        n_long = int((counts > 1).sum())
        self.report["windows"] = {"train": len(ids), "train_sentences": len(train),
                                  "split_sentences": n_long}
        if n_long:
            info("%d training sentences are longer than max_length=%d sub-words: %d windows in all",
                 n_long, c.max_length, len(ids))
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.model.parameters())
        self.report["parameters"] = {"trainable": trainable, "total": total}
        valid_windows = self.windows.windows(valid.tokens)
        if c.head_init == "probe" and not self.context.resume:
            self._probe_head(wins, y)

        def evaluate() -> dict:
            pred, _ = self._predict_windows(valid.tokens, valid_windows)
            m = entity_metrics(valid.tags, pred)
            return {"f1": m["f1"], "precision": m["precision"], "recall": m["recall"]}

        ctx = self.context
        callbacks = run_callbacks(ctx, c, scores=("f1", "precision", "recall"))
        cfg = loop.LoopConfig.from_config(c, monitor="f1")
        result = loop.Loop(self.model, ids, y, self.pad_id, evaluate, cfg, self.device, self.dtype,
                           loss_fn=TokenLoss(self.model), callbacks=callbacks,
                           run_dir=ctx.run_dir, resume=ctx.resume).run()
        self.history = result.history
        self.best_epoch = result.best_epoch
        self._after_fit()
        return self

    @torch.no_grad()
    def _probe_head(self, wins: list[Window], y: np.ndarray, max_windows: int = 2000) -> None:
        """LP-FT: fit the head on frozen features of (a seeded sample of) the training windows;
        one fit per slot (a slot with too few examples or one class starts from slot 0's)."""
        t0 = time.perf_counter()
        pick = np.random.default_rng(self.config.seed).permutation(len(wins))[:max_windows]
        k, n_tags = self.slots, len(self.tags)
        feats, labels, slots = [], [], []
        self.model.eval()
        batches = length_grouped_batches([len(wins[i].ids) for i in pick],
                                         self.config.eval_batch_size, None)
        with progress("probing the head", len(pick)) as bar:
            for idx in batches:
                rows = [int(pick[i]) for i in idx]
                batch = {k: v.to(self.device)
                         for k, v in collate([wins[r].ids for r in rows], self.pad_id).items()}
                with autocast(self.device, self.dtype):
                    h = self.model.encoder(**batch).last_hidden_state.float().cpu().numpy()
                for b, r in enumerate(rows):
                    pos = np.asarray(wins[r].positions)
                    slot = np.minimum(wins[r].slots, k - 1)
                    feats.append(h[b, pos])
                    labels.append(y[r, pos * k + slot])
                    slots.append(slot)
                bar.advance(len(rows))
        feats, labels, slots = np.concatenate(feats), np.concatenate(labels), np.concatenate(slots)
        fitted = []
        for j in range(k):
            m = slots == j
            if j and (m.sum() < 50 or len(np.unique(labels[m])) < 2):
                weight, bias = fitted[0]
            else:
                weight, bias = fit_linear_head(feats[m], labels[m], n_tags, seed=self.config.seed)
            fitted.append((weight, bias))
            self.model.head.weight[j * n_tags:(j + 1) * n_tags].copy_(torch.from_numpy(weight))
            self.model.head.bias[j * n_tags:(j + 1) * n_tags].copy_(torch.from_numpy(bias))
        self.report["head_init"] = {"kind": "probe", "windows": len(pick),
                                    "seconds": round(time.perf_counter() - t0, 1)}

    # -- prediction ----------------------------------------------------------------------------

    @torch.inference_mode()
    def _emissions(self, wins: list[Window]) -> list[np.ndarray]:
        self.model.eval()
        out: list = [None] * len(wins)
        batches = length_grouped_batches([len(w.ids) for w in wins], self.config.eval_batch_size,
                                         None)
        with progress("tagging", len(wins)) as bar:
            for idx in batches:
                batch = {k: v.to(self.device)
                         for k, v in collate([wins[i].ids for i in idx], self.pad_id).items()}
                with autocast(self.device, self.dtype):
                    em = self.model(batch["input_ids"], batch["attention_mask"])
                em = em.float().cpu().numpy()
                for r, i in enumerate(idx):
                    out[i] = wins[i].pick(em[r, wins[i].positions], len(self.tags))
                bar.advance(len(idx))
        return out

    def sentence_emissions(self, tokens: list[list[str]],
                           wins: list[Window] | None = None) -> list[np.ndarray]:
        """Per sentence an ``(n_words, n_tags)`` array: each word's scores from the window where
        its first sub-word is most central."""
        wins = self.windows.windows(tokens) if wins is None else wins
        return best_window_emissions(tokens, wins, self._emissions(wins), len(self.tags))

    def _decode(self, ems: list[np.ndarray]) -> tuple[list[list[str]], list[list[float]]]:
        tags: list = [None] * len(ems)
        conf: list = [None] * len(ems)
        crf = self.model.crf
        if crf is None:
            for i, em in enumerate(ems):
                p = torch.softmax(torch.from_numpy(em).double(), dim=1).numpy()
                best = p.argmax(1) if len(em) else np.zeros(0, dtype=int)
                tags[i] = valid_bio([self.tags[k] for k in best])
                conf[i] = [float(p[j, k]) for j, k in enumerate(best)]
            return tags, conf
        order = sorted(range(len(ems)), key=lambda i: -len(ems[i]))
        for start in range(0, len(order), 256):
            idx = [i for i in order[start:start + 256] if len(ems[i])]
            for i in order[start:start + 256]:
                if not len(ems[i]):
                    tags[i], conf[i] = [], []
            if not idx:
                continue
            width = len(ems[idx[0]])
            em = torch.zeros(len(idx), width, len(self.tags))
            mask = torch.zeros(len(idx), width, dtype=torch.bool)
            for r, i in enumerate(idx):
                em[r, :len(ems[i])] = torch.from_numpy(ems[i])
                mask[r, :len(ems[i])] = True
            em, mask = em.to(self.device), mask.to(self.device)
            paths = crf.decode(em, mask)
            marg = crf.marginals(em, mask).cpu().numpy()
            for r, i in enumerate(idx):
                tags[i] = [self.tags[k] for k in paths[r]]
                conf[i] = [float(marg[r, j, k]) for j, k in enumerate(paths[r])]
        return tags, conf

    def _predict_windows(self, tokens, wins):
        return self._decode(self.sentence_emissions(tokens, wins))

    def predict(self, tokens: list[list[str]]) -> tuple[list[list[str]], list[list[float]]]:
        return self._predict_windows(tokens, None)

    # -- persistence ---------------------------------------------------------------------------

    def to_state(self) -> State:
        state = State(meta={"best_epoch": getattr(self, "best_epoch", None), **self.report,
                            "tags": self.tags},
                      tensors=dict(self.model.state_dict()))
        state.add_pretrained("tokenizer", self.tokenizer)
        state.files["model/config.json"] = json.dumps(
            self.model.encoder.config.to_dict(), indent=2, default=str).encode()
        return state

    @classmethod
    def from_state(cls, config, tags, backbone, reader: BundleReader) -> "FinetuneTagger":
        self = cls(config, tags, backbone)
        encoder = backbones.load_encoder(reader.path("model"), config_only=True)
        pieces = reader.meta.get("pieces", {"mode": "words", "slots": 1})  # older: words
        self._setup(encoder, backbones.load_tokenizer(reader.path("tokenizer")), pieces["mode"],
                    int(pieces["slots"]))
        missing, unexpected = self.model.load_state_dict(reader.tensors(), strict=False)
        if missing or unexpected:
            raise BundleError(f"{reader.root}: weights do not fit the model (missing "
                              f"{missing[:5]}, unexpected {unexpected[:5]})")
        self.best_epoch = reader.meta.get("best_epoch")
        self.report = {k: v for k, v in reader.meta.items() if k not in ("best_epoch", "tags")}
        self.model.to(self.device).eval()
        return self


class LoraTagger(FinetuneTagger):
    """LoRA adapters on the encoder during training, merged into the weights afterwards."""

    name = "lora"
    Config = LoraConfig

    def _prepare_encoder(self, encoder):
        import peft

        return peft.get_peft_model(encoder, self.config.peft_config())

    def _after_fit(self) -> None:
        self.model.encoder = self.model.encoder.merge_and_unload()
        self.report["merged"] = True
        self.model.eval()
