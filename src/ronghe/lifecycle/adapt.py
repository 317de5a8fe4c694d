"""Domain-adaptive pretraining (DAPT): continue a backbone's masked-language-model training on
unlabelled in-domain text, and write the encoder as a backbone folder ``--model`` accepts.

transformers does the model side: ``AutoModelForMaskedLM`` on the backbone folder (safetensors
only, no remote code; a sentence-embedding checkpoint such as MiniLM ships without its MLM
head, which then starts fresh - transformers says which weights it initialised) and
``DataCollatorForLanguageModeling`` for the masking (15 %, BERT's 80/10/10 rule). The loop is
plain AdamW with a linear schedule, shown with a progress bar. Before and after, the masked-LM
loss on a held-out 10 % of the texts is measured (same masks both times) and written to
``adapt.json`` in the folder: a loss that did not fall means the adaptation did nothing.

Two guards keep the encoder's sentence space, which ronghe's strategies rely on (mean-pooled
features for ``frozen``, the starting point of ``finetune``), from being wrecked by the MLM
objective. Measured before they existed (``benchmarks/lifecycle.py --part dapt``): MiniLM adapted
for one epoch on BANKING77 lost 19 points of frozen accuracy at 5 labels per intent.

* Head warm-up: when the checkpoint ships no MLM head (sentence-embedding models such as
  all-MiniLM-L6-v2; transformers reports the head weights as newly initialised), the first
  ``head_warmup_steps`` train the head alone with the encoder frozen. Otherwise the random head's
  large gradients (held-out loss ~10.9, i.e. chance over the vocabulary) flow into the encoder.
* Embedding anchor: the loss adds ``anchor`` x (1 - cosine) between the mean-pooled sentence
  embedding of the adapted encoder and of a frozen copy of the original, on the same batch - a
  self-distillation term against forgetting (as in learning without forgetting). ``anchor=0``
  is plain MLM. ``adapt.json`` records how far the space moved: the mean cosine between old and
  new embeddings of the held-out texts.

With a run directory: checkpoints a killed run resumes from exactly, metrics.csv, TensorBoard or
MLflow - the same ``training.checkpoint`` and ``training.tracking.Tracker`` that fits use.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, DataError
from ..log import info, progress, warn
from ..modeling import collate, mean_pool  # imports torch: this module loads only to adapt


class AdaptConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(1, ge=1, le=100)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-5, gt=0, lt=1)
    max_length: int = Field(128, ge=8, le=4096)
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    eval_fraction: float = Field(0.1, gt=0, lt=0.5)
    head_warmup_steps: int = Field(200, ge=0, description="head-only steps when the checkpoint "
                                   "has no MLM head (0: none)")
    head_learning_rate: float = Field(1e-3, gt=0, lt=1)
    checkpoint_every: int = Field(200, ge=1, description="steps between checkpoints (with a "
                                  "run directory)")
    anchor: float = Field(10.0, ge=0, description="weight of the embedding-keeping term "
                          "(1 - cosine to the original encoder's mean-pooled embedding); 0: off")
    seed: int = 0


def _similarity(encoder, original, ids: list, pad: int, batch_size: int) -> float:
    """Mean cosine between the two encoders' mean-pooled embeddings of ``ids``."""
    import torch

    encoder.eval()
    sims = []
    with torch.no_grad():
        for i in range(0, len(ids), batch_size):
            batch = collate(ids[i:i + batch_size], pad)
            mask = batch["attention_mask"]
            a = mean_pool(encoder(**batch).last_hidden_state, mask)
            b = mean_pool(original(**batch).last_hidden_state, mask)
            sims.append(torch.nn.functional.cosine_similarity(a, b).cpu())
    return float(torch.cat(sims).mean())


def _loss(model, collator, ids: list, batch_size: int, seed: int) -> float:
    import torch

    torch.manual_seed(seed)  # the same masks before and after
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(ids), batch_size):
            batch = collator([{"input_ids": x} for x in ids[i:i + batch_size]])
            out = model(**batch)
            k = int((batch["labels"] != -100).sum())
            total += float(out.loss) * k
            n += k
    return total / max(n, 1)


def _head_warmup(mlm, collator, train: list, steps: int, c: AdaptConfig, rng, bar) -> None:
    """Train only the MLM head (the encoder frozen, tied embeddings included) for ``steps``."""
    import torch

    base = mlm.base_model
    base.requires_grad_(False)
    head = [p for p in mlm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(head, lr=c.head_learning_rate, weight_decay=0.01)
    mlm.train()
    done = 0
    while done < steps:
        perm = rng.permutation(len(train))
        for i in range(0, len(train), c.batch_size):
            if done == steps:
                break
            batch = collator([{"input_ids": train[j]} for j in perm[i:i + c.batch_size]])
            mlm(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_(head, 1.0)
            opt.step()
            opt.zero_grad()
            done += 1
            bar.advance()
    base.requires_grad_(True)


class _Progress:
    """What ``training.tracking.Tracker`` reads from a loop: step, epoch, optimizer, time."""

    def __init__(self, optimizer):
        self.optimizer, self.global_step, self.epoch = optimizer, 0, 0
        self._t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0


def adapt(texts: list[str], out: Path, model: str = "minilm",
          config: AdaptConfig | None = None, *, run_dir: Path | None = None,
          resume: bool = False, report_to: list[str] | None = None) -> dict:
    """Continue MLM pretraining of ``model`` on ``texts``; write the encoder to ``out``.

    ``run_dir``: checkpoints every ``checkpoint_every`` steps (safetensors + JSON, as for
    training), ``metrics.csv`` (training loss per 10 steps, held-out MLM loss at the end),
    TensorBoard events or MLflow with ``report_to``; ``resume=True`` continues from its checkpoint
    and takes the same steps the uninterrupted run would have."""
    import torch
    from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling

    from .. import backbones
    from ..bundle import swap_into_place
    from ..training import checkpoint
    from ..training.tracking import Tracker

    c = config or AdaptConfig()
    out = Path(out)
    if out.exists() and not (out / "adapt.json").exists():
        raise ConfigError(f"--out {out} exists and is not an earlier adapt-domain folder; give "
                          "a new folder")
    if resume and not checkpoint.exists(run_dir):
        raise ConfigError(f"--resume: no checkpoint in {run_dir}/{checkpoint.NAME}; give the "
                          "--run-dir of the interrupted run, or start without --resume")
    texts = [t for t in texts if t and t.strip()]
    if len(texts) < 20:
        raise DataError(f"domain adaptation needs at least 20 non-empty texts, got {len(texts)}")
    bb = backbones.resolve(model)
    tok = backbones.load_tokenizer(bb.path)
    torch.manual_seed(c.seed)  # a missing MLM head is initialised from the global RNG
    mlm, loading = AutoModelForMaskedLM.from_pretrained(
        str(bb.path), trust_remote_code=False, use_safetensors=True, output_loading_info=True)
    prefix = mlm.base_model_prefix + "."
    fresh_head = sorted(k for k in loading.get("missing_keys", []) if not k.startswith(prefix))
    original = copy.deepcopy(mlm.base_model).eval().requires_grad_(False)
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=c.mlm_probability,
                                               return_tensors="pt")
    rng = np.random.default_rng(c.seed)
    order = rng.permutation(len(texts))
    n_eval = max(1, int(len(texts) * c.eval_fraction))
    ids = tok([texts[i] for i in order], truncation=True, max_length=c.max_length)["input_ids"]
    held, train = ids[:n_eval], ids[n_eval:]
    per_epoch = math.ceil(len(train) / c.batch_size)
    steps = c.epochs * per_epoch
    warmup = min(c.head_warmup_steps, steps) if fresh_head else 0  # never longer than the rest
    opt = torch.optim.AdamW(mlm.parameters(), lr=c.learning_rate, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / steps))
    state = _Progress(opt)
    tracker = (Tracker(run_dir, {"from": bb.ref, **c.model_dump()}, report_to or [],
                       resume=resume, scores=("mlm_loss",)) if run_dir is not None else None)
    if resume:
        pos, epoch_rng, _ = checkpoint.load(run_dir, model=mlm, optimizer=opt, scheduler=sched)
        before, after_warmup = pos["mlm_loss_before"], pos["mlm_loss_after_head_warmup"]
        start_epoch, skip = pos["epoch"], pos["step_in_epoch"]
        state.global_step, state._t0 = pos["global_step"], state._t0 - pos["elapsed"]
        info("resuming from step %d of %d", state.global_step, steps)
    else:
        before = _loss(mlm, collator, held, c.batch_size, c.seed)
        start_epoch, skip, epoch_rng = 0, 0, None
        if fresh_head:
            info("%s has no masked-LM head (%d weights start fresh): training the head alone "
                 "for %d steps first", bb.ref, len(fresh_head), warmup)
        torch.manual_seed(c.seed)
    if tracker:
        tracker.on_train_begin(state)
    info("adapting %s on %d texts (%d held out), %d steps", bb.ref, len(train), n_eval, steps)
    with progress("domain-adaptive pretraining", warmup + steps) as bar:
        if resume:
            bar.advance(warmup + state.global_step)
        else:
            if warmup:
                _head_warmup(mlm, collator, train, warmup, c, rng, bar)
            after_warmup = _loss(mlm, collator, held, c.batch_size, c.seed) if warmup else None
        for epoch in range(start_epoch, c.epochs):
            state.epoch = epoch + 1
            mlm.train()
            if epoch_rng is not None and epoch == start_epoch:
                rng.bit_generator.state = epoch_rng  # the interrupted epoch's batch order
            epoch_rng = rng.bit_generator.state
            perm = rng.permutation(len(train))
            for k, i in enumerate(range(0, len(train), c.batch_size)):
                if epoch == start_epoch and k < skip:
                    continue
                batch = collator([{"input_ids": train[j]} for j in perm[i:i + c.batch_size]])
                loss = _step_loss(mlm, original, batch, c.anchor)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(mlm.parameters(), 1.0)
                opt.step()
                sched.step()
                opt.zero_grad()
                state.global_step += 1
                bar.advance()
                if tracker:
                    tracker.on_step_end(state, float(loss.detach()))
                if run_dir is not None and state.global_step % c.checkpoint_every == 0:
                    checkpoint.save(run_dir, model=mlm, optimizer=opt, scheduler=sched,
                                    best_state=None, epoch_rng_state=epoch_rng, position={
                                        "epoch": epoch, "step_in_epoch": k + 1,
                                        "global_step": state.global_step,
                                        "elapsed": state.elapsed(), "mlm_loss_before": before,
                                        "mlm_loss_after_head_warmup": after_warmup})
    seconds = state.elapsed()
    after = _loss(mlm, collator, held, c.batch_size, c.seed)
    kept = _similarity(mlm.base_model, original, held, tok.pad_token_id or 0, c.batch_size)
    if tracker:
        tracker.on_epoch_end(state, {"epoch": c.epochs, "valid_mlm_loss": round(after, 6),
                                     "seconds": round(seconds, 2)})
        tracker.on_train_end(state)
    report = {"from": bb.ref, "from_sha256": bb.sha256, "texts": len(train), "held_out": n_eval,
              "steps": steps, "head_warmup_steps": warmup, "fresh_head_weights": len(fresh_head),
              "config": c.model_dump(), "seconds": round(seconds, 1), "resumed": resume,
              "mlm_loss_before": round(before, 4),
              "mlm_loss_after_head_warmup": None if after_warmup is None else round(after_warmup, 4),
              "mlm_loss_after": round(after, 4),
              "embedding_cosine_to_original": round(kept, 4)}
    if kept < 0.9:
        warn("the adapted encoder's sentence embeddings moved far from the original's (mean "
             "cosine %.3f on held-out texts): check downstream accuracy against the original "
             "backbone before using it, or raise the 'anchor' option", kept)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{time.time_ns()}")
    try:
        mlm.base_model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        (tmp / "adapt.json").write_text(json.dumps(report, indent=2))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written is left beside --out
        raise
    swap_into_place(tmp, out)
    return report


def _step_loss(mlm, original, batch: dict, anchor: float):
    """The masked-LM loss, plus ``anchor`` x (1 - cosine) to the original encoder's mean-pooled
    embedding of the same (masked) batch."""
    import torch

    out = mlm(**batch, output_hidden_states=anchor > 0)
    if anchor <= 0:
        return out.loss
    mask = batch["attention_mask"]
    with torch.no_grad():
        ref = original(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
    cos = torch.nn.functional.cosine_similarity(mean_pool(out.hidden_states[-1], mask),
                                                mean_pool(ref, mask))
    return out.loss + anchor * (1 - cos).mean()
