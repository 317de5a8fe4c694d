"""Domain-adaptive pretraining (DAPT): continue a backbone's masked-language-model training on
unlabelled in-domain text, and write the encoder as a backbone folder ``--model`` accepts.

transformers does the model side: ``AutoModelForMaskedLM`` on the backbone folder (safetensors
only, no remote code; a sentence-embedding checkpoint such as MiniLM ships without its MLM
head, which then starts fresh - transformers says which weights it initialised) and
``DataCollatorForLanguageModeling`` for the masking (15 %, BERT's 80/10/10 rule). The loop is
plain AdamW with a linear schedule, shown with a progress bar. Before and after, the masked-LM
loss on a held-out 10 % of the texts is measured (same masks both times) and written to
``adapt.json`` in the folder: a loss that did not fall means the adaptation did nothing.

Not done here (yet): resuming an interrupted run and experiment tracking.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, DataError
from ..log import info, progress


class AdaptConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(1, ge=1, le=100)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-5, gt=0, lt=1)
    max_length: int = Field(128, ge=8, le=4096)
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    eval_fraction: float = Field(0.1, gt=0, lt=0.5)
    seed: int = 0


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


def adapt(texts: list[str], out: Path, model: str = "minilm",
          config: AdaptConfig | None = None) -> dict:
    """Continue MLM pretraining of ``model`` on ``texts``; write the encoder to ``out``."""
    import torch
    from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling

    from .. import backbones

    c = config or AdaptConfig()
    out = Path(out)
    if out.exists() and not (out / "adapt.json").exists():
        raise ConfigError(f"--out {out} exists and is not an earlier adapt-domain folder; give "
                          "a new folder")
    texts = [t for t in texts if t and t.strip()]
    if len(texts) < 20:
        raise DataError(f"domain adaptation needs at least 20 non-empty texts, got {len(texts)}")
    bb = backbones.resolve(model)
    tok = backbones.load_tokenizer(bb.path)
    mlm = AutoModelForMaskedLM.from_pretrained(str(bb.path), trust_remote_code=False,
                                               use_safetensors=True)
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=c.mlm_probability,
                                               return_tensors="pt")
    rng = np.random.default_rng(c.seed)
    order = rng.permutation(len(texts))
    n_eval = max(1, int(len(texts) * c.eval_fraction))
    ids = tok([texts[i] for i in order], truncation=True, max_length=c.max_length)["input_ids"]
    held, train = ids[:n_eval], ids[n_eval:]
    before = _loss(mlm, collator, held, c.batch_size, c.seed)
    steps = c.epochs * math.ceil(len(train) / c.batch_size)
    opt = torch.optim.AdamW(mlm.parameters(), lr=c.learning_rate, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / steps))
    torch.manual_seed(c.seed)
    start = time.perf_counter()
    info("adapting %s on %d texts (%d held out), %d steps", bb.ref, len(train), n_eval, steps)
    with progress("domain-adaptive pretraining", steps) as bar:
        for epoch in range(c.epochs):
            mlm.train()
            perm = rng.permutation(len(train))
            for i in range(0, len(train), c.batch_size):
                batch = collator([{"input_ids": train[j]} for j in perm[i:i + c.batch_size]])
                loss = mlm(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(mlm.parameters(), 1.0)
                opt.step()
                sched.step()
                opt.zero_grad()
                bar.advance()
    seconds = time.perf_counter() - start
    after = _loss(mlm, collator, held, c.batch_size, c.seed)
    report = {"from": bb.ref, "from_sha256": bb.sha256, "texts": len(train), "held_out": n_eval,
              "steps": steps, "config": c.model_dump(), "seconds": round(seconds, 1),
              "mlm_loss_before": round(before, 4), "mlm_loss_after": round(after, 4)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{time.time_ns()}")
    mlm.base_model.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    (tmp / "adapt.json").write_text(json.dumps(report, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return report
