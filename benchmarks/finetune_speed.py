#!/usr/bin/env python
"""ronghe ``finetune`` vs a plain transformers ``Trainer`` script: wall time and dev accuracy.

Same model (the packaged all-MiniLM-L6-v2 folder), same data (a seeded 8k sample of SST-2 train,
10 % of it held out for validation - the identical split for both), same hyper-parameters
(lr 5e-5, batch 32, 3 epochs, warm-up 10 %, weight decay 0.01, max_length 128, fp32), validation
after every epoch in both. The Trainer side is written the way a typical user writes it:
tokenizer with truncation, ``DataCollatorWithPadding`` (dynamic padding to the longest in each
random batch), ``AutoModelForSequenceClassification`` (CLS + pooler head; ronghe mean-pools),
default settings otherwise (no checkpoint saving so disk writes do not count against it). A
third side, ``trainer-grouped``, is the same script with ``group_by_length=True`` - what an expert
would turn on - and the headline ratio is against the faster of the two Trainer runs.

Each run is a fresh subprocess with 2 pinned threads; runs alternate A B B A (``--pairs 2``) so
that a change of machine load during the benchmark hits both sides alike. Timed: from before the
model and tokenizer are loaded to the end of training (tokenisation, every epoch and every
per-epoch validation included; dev evaluation afterwards is not timed). The speed-up is reported
as the ratio of wall times and of CPU seconds (CPU time is less sensitive to other processes).

    python benchmarks/finetune_speed.py            # full run (~15 min on 2 idle cores)
    python benchmarks/finetune_speed.py --quick    # smoke run: 800 examples, 1 epoch, one pair
    python benchmarks/finetune_speed.py --profile  # also profile 30 steps of ronghe's loop
"""

from __future__ import annotations

import json
import statistics
import time

import common  # benchmarks/common.py: this script's folder is first on sys.path

common.pin_threads()

NAME = "finetune_speed"
HP = {"learning_rate": 5e-5, "batch_size": 32, "epochs": 3, "warmup_ratio": 0.1,
      "weight_decay": 0.01, "max_length": 128, "seed": 0}


# ---------------------------------------------------------------------------------- workers

def worker_ronghe(spec: dict) -> dict:
    common.torch_threads()
    import torch

    from ronghe import TextClassifier, data

    hp = spec["hp"]
    tr, ytr = common.read_jsonl(spec["train"])
    va, yva = common.read_jsonl(spec["valid"])
    dev, ydev = common.read_jsonl(spec["dev"])
    valid = data.from_texts(va, yva)
    cpu0 = common.cpu_seconds()
    t0 = time.perf_counter()
    clf = TextClassifier(strategy="finetune", model="minilm", epochs=hp["epochs"],
                         batch_size=hp["batch_size"], learning_rate=hp["learning_rate"],
                         max_length=hp["max_length"], seed=hp["seed"],
                         precision=spec.get("precision", "fp32"),
                         options={"warmup_ratio": hp["warmup_ratio"],
                                  "weight_decay": hp["weight_decay"]})
    clf.fit(tr, ytr, valid=valid)
    wall = time.perf_counter() - t0
    cpu = common.cpu_seconds() - cpu0
    report = clf.evaluate(dev, ydev)
    return {"side": "ronghe", "precision": spec.get("precision", "fp32"),
            "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "ronghe_train_seconds": round(clf.train_seconds_, 2),
            "dev_accuracy": round(report["accuracy"], 4),
            "dev_macro_f1": round(report["macro_f1"], 4),
            "history": clf.metrics_["history"], "parameters": clf.metrics_["parameters"],
            "torch_threads": torch.get_num_threads(),
            "best_epoch": clf.strategy_.best_epoch}


def worker_trainer(spec: dict) -> dict:
    """The plain transformers script, as a user would write it."""
    common.torch_threads()
    import numpy as np
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                              DataCollatorWithPadding, Trainer, TrainingArguments)

    hp = spec["hp"]
    path = spec["model_path"]
    tr, ytr = common.read_jsonl(spec["train"])
    va, yva = common.read_jsonl(spec["valid"])
    dev, ydev = common.read_jsonl(spec["dev"])
    cpu0 = common.cpu_seconds()
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)

    def encode(texts, labels):
        enc = tokenizer(texts, truncation=True, max_length=hp["max_length"])
        return [{**{k: enc[k][i] for k in enc}, "labels": labels[i]} for i in range(len(texts))]

    train_ds, valid_ds = encode(tr, ytr), encode(va, yva)

    def compute_metrics(pred):
        return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}

    import dataclasses

    grouped = spec.get("side") == "trainer-grouped"
    # transformers 5 replaced group_by_length=True by train_sampling_strategy="group_by_length"
    sampling = ({"train_sampling_strategy": "group_by_length" if grouped else "random"}
                if "train_sampling_strategy" in {f.name for f in dataclasses.fields(TrainingArguments)}
                else {"group_by_length": grouped})
    args = TrainingArguments(
        output_dir=spec["out_dir"], learning_rate=hp["learning_rate"],
        per_device_train_batch_size=hp["batch_size"], per_device_eval_batch_size=hp["batch_size"],
        num_train_epochs=hp["epochs"], warmup_steps=hp["warmup_ratio"],  # <1: a ratio (v5)
        weight_decay=hp["weight_decay"], eval_strategy="epoch", save_strategy="no",
        **sampling,
        logging_strategy="epoch", report_to="none", seed=hp["seed"], use_cpu=True,
        disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=valid_ds,
                      data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=compute_metrics, processing_class=tokenizer)
    trainer.train()
    wall = time.perf_counter() - t0
    cpu = common.cpu_seconds() - cpu0
    pred = trainer.predict(encode(dev, ydev))
    # pred.label_ids, not ydev: with length grouping transformers 5 also reorders prediction
    ydev = [int(y) for y in pred.label_ids]
    acc = float((pred.predictions.argmax(-1) == np.asarray(ydev)).mean())
    from sklearn.metrics import f1_score

    history = [{k: v for k, v in row.items()} for row in trainer.state.log_history]
    return {"side": spec.get("side", "trainer"), "wall_seconds": round(wall, 2),
            "cpu_seconds": round(cpu, 2),
            "dev_accuracy": round(acc, 4),
            "dev_macro_f1": round(float(f1_score(ydev, pred.predictions.argmax(-1),
                                                 average="macro")), 4),
            "history": history, "torch_threads": torch.get_num_threads(),
            "parameters": {"trainable": sum(p.numel() for p in model.parameters()
                                            if p.requires_grad),
                           "total": sum(p.numel() for p in model.parameters())}}


def worker_profile(spec: dict) -> dict:
    """Where ronghe's training step spends its time: torch.profiler over ``steps`` steps of the
    same loop (same batching/collate/optimizer code path), plus the padding share of the
    batches each side forms."""
    common.torch_threads()
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    from ronghe import backbones
    from ronghe.modeling import TextModel, collate, length_grouped_batches, tokenize
    from ronghe.training import loop

    hp = spec["hp"]
    tr, ytr = common.read_jsonl(spec["train"])
    bb = backbones.resolve("minilm")
    tok = backbones.load_tokenizer(bb.path)
    ids = tokenize(tok, tr, hp["max_length"])
    lengths = np.array([len(s) for s in ids])
    rng = np.random.default_rng(0)
    grouped = length_grouped_batches(lengths, hp["batch_size"], rng)
    perm = np.random.default_rng(0).permutation(len(ids))
    rand = [perm[i:i + hp["batch_size"]] for i in range(0, len(perm), hp["batch_size"])]

    def padded(batches):
        real = sum(int(lengths[b].sum()) for b in batches)
        total = sum(int(lengths[b].max()) * len(b) for b in batches)
        return {"real_tokens": real, "padded_tokens": total, "pad_share": round(1 - real / total, 3)}

    model = TextModel(backbones.load_encoder(bb.path), 2, "mean", 0.1)
    model.train()
    opt = loop.adamw(loop.param_groups(model, loop.LoopConfig(1, 32, 5e-5)), 5e-5,
                     torch.device("cpu"))  # the loop's own optimizer
    labels = torch.as_tensor(ytr)
    steps = spec.get("steps", 30)
    timings = {"collate": 0.0, "forward": 0.0, "backward": 0.0, "clip": 0.0, "optimizer": 0.0}

    def step(idx):
        t = time.perf_counter()
        batch = collate([ids[i] for i in idx], 0)
        t1 = time.perf_counter()
        logits = model(batch["input_ids"], batch["attention_mask"])
        loss = torch.nn.functional.cross_entropy(logits, labels[idx])
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        t4 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t5 = time.perf_counter()
        for k, a, b in (("collate", t, t1), ("forward", t1, t2), ("backward", t2, t3),
                        ("clip", t3, t4), ("optimizer", t4, t5)):
            timings[k] += b - a

    for idx in grouped[:3]:  # warm-up
        step(idx)
    timings = dict.fromkeys(timings, 0.0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for idx in grouped[3:3 + steps]:
            step(idx)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    total = sum(timings.values())
    variants = optimizer_variants(ids, labels, grouped[3 + steps:] or grouped,
                                  spec.get("variant_steps", 3))
    return {"steps": steps, "phase_seconds": {k: round(v, 3) for k, v in timings.items()},
            "optimizer_variants": variants,
            "phase_share": {k: round(v / total, 3) for k, v in timings.items()},
            "padding": {"ronghe_length_grouped": padded(grouped),
                        "random_batches_dynamic_padding": padded(rand),
                        "mean_tokens_per_text": round(float(lengths.mean()), 1),
                        "max_tokens": int(lengths.max())},
            "profiler_top_ops": table}


def optimizer_variants(ids, labels, batches, n_steps: int, rounds: int = 2) -> dict:
    """Seconds per full training step (forward, backward, clipping, AdamW) on the same batches
    for: ronghe's loop as it is (its network, its fused AdamW and parameter groups); the
    multi-tensor AdamW it used before; word embeddings frozen (their 11.7M of 22.7M parameters
    get a dense gradient and a full AdamW update every step although a batch touches a few
    hundred rows); and the Trainer script's network (``AutoModelForSequenceClassification``:
    CLS + pooler head) with fused AdamW in two groups, as the Trainer builds it - so a gap
    between the two sides' epochs can be put on the network or on the loop. Variants take
    turns."""
    import copy
    import statistics

    import torch
    from transformers import AutoModelForSequenceClassification

    from ronghe import backbones
    from ronghe.modeling import TextModel, collate
    from ronghe.training import loop

    path = backbones.resolve("minilm").path
    base = TextModel(backbones.load_encoder(path), 2, "mean", 0.1)
    made = {}
    for name in ("ronghe_now", "multi_tensor_adamw", "frozen_word_embeddings"):
        m = copy.deepcopy(base)
        if name == "frozen_word_embeddings":
            m.encoder.get_input_embeddings().weight.requires_grad_(False)
        m.train()
        groups = loop.param_groups(m, loop.LoopConfig(1, 32, 5e-5))
        opt = (torch.optim.AdamW(groups, lr=5e-5) if name == "multi_tensor_adamw"
               else loop.adamw(groups, 5e-5, torch.device("cpu")))
        made[name] = (m, opt)
    hf = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=2)
    hf.train()
    decay = [p for n, p in hf.named_parameters() if p.ndim >= 2]
    rest = [p for n, p in hf.named_parameters() if p.ndim < 2]
    made["trainer_network"] = (
        lambda ids_, mask: hf(input_ids=ids_, attention_mask=mask).logits,
        torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                           {"params": rest, "weight_decay": 0.0}], lr=5e-5, fused=True))
    params = {k: (list(hf.parameters()) if k == "trainer_network" else list(m.parameters()))
              for k, (m, _) in made.items()}
    times = {k: [] for k in made}
    pos = 0
    for r in range(rounds + 1):
        for name, (m, opt) in made.items():
            for idx in [batches[(pos + j) % len(batches)] for j in range(n_steps)]:
                t = time.perf_counter()
                batch = collate([ids[i] for i in idx], 0)
                loss = torch.nn.functional.cross_entropy(
                    m(batch["input_ids"], batch["attention_mask"]), labels[idx])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params[name], 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                if r > 0:  # round 0 warms up
                    times[name].append(time.perf_counter() - t)
        pos += n_steps
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"median_step_seconds": {k: round(v, 3) for k, v in med.items()},
            "relative_to_ronghe_now": {k: round(v / med["ronghe_now"], 2) for k, v in med.items()},
            "steps_timed": {k: len(v) for k, v in times.items()}}


# ------------------------------------------------------------------------------------ driver

def prepare(quick: bool) -> dict:
    from ronghe import backbones

    work = common.WORK / NAME / ("quick" if quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    hp = dict(HP, epochs=1 if quick else HP["epochs"])
    return {**common.sst2_split(800 if quick else 8000, work), "hp": hp,
            "model_path": str(backbones.resolve("minilm").path),
            "out_dir": str(work / "trainer-out"), "work": str(work)}


def roofline(spec: dict, summary: dict) -> dict:
    """How far each side is from the CPU's fp32 limit, and so how much faster than the peer any
    implementation could be: the useful FLOPs of the whole run (every training sentence at its
    own length, forward + backward = 3 forward passes, per epoch; the per-epoch validation
    forward passes) against the estimated fp32 peak of the pinned threads
    (``common.peak_gflops``). The compute-bound seconds are those FLOPs at peak with nothing
    else (no loading, tokenisation, padding, optimizer or Python) - a floor no implementation of
    the same training gets under, so the peer's seconds over it bound the speed-up any fp32
    implementation can reach."""
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(spec["model_path"])
    cfg = AutoConfig.from_pretrained(spec["model_path"])
    enc = {"hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size,
           "num_hidden_layers": cfg.num_hidden_layers}
    epochs, max_len = spec["hp"]["epochs"], spec["hp"]["max_length"]

    def flops(path) -> tuple[float, float]:
        texts, _ = common.read_jsonl(path)
        lens = [len(x) for x in tok(texts, truncation=True, max_length=max_len)["input_ids"]]
        return (sum(common.flops_per_example(n, enc, enc["num_hidden_layers"]) for n in lens),
                sum(lens) / len(lens))

    train, train_tokens = flops(spec["train"])
    valid, _ = flops(spec["valid"])
    useful = epochs * (3 * train + valid)
    peak = common.peak_gflops(common.THREADS)
    bound_s = useful / 1e9 / peak["fp32"]
    sides = {s: {"achieved_gflops": round(useful / 1e9 / d["wall_median"], 1),
                 "percent_of_peak": round(100 * useful / 1e9 / d["wall_median"] / peak["fp32"], 1)}
             for s, d in summary.items() if s in SIDES}
    peer = summary["peer"]
    return {"encoder": enc, "mean_train_tokens": round(train_tokens, 1),
            "useful_tflop": round(useful / 1e12, 2), "peak_gflops": peak,
            "compute_bound_seconds": round(bound_s, 1), "sides": sides, "peer": peer,
            "ceiling_speedup_vs_peer": round(summary[peer]["wall_median"] / bound_s, 2),
            "percent_of_peak_for_aim": round(100 * 1.5 * useful / 1e9
                                             / summary[peer]["wall_median"] / peak["fp32"], 1)}


def run_worker(kind: str, spec: dict, tag: str) -> dict:
    print(f"[{time.strftime('%H:%M:%S')}] {tag} (load {common.load_average()})", flush=True)
    res = common.run_worker(__file__, kind, spec, tag, spec["work"])
    print(f"    wall {res.get('wall_seconds')} s, cpu {res.get('cpu_seconds')} s, "
          f"dev acc {res.get('dev_accuracy')}", flush=True)
    return res


SIDES = ("ronghe", "trainer", "trainer-grouped")


def summarise(runs: list[dict]) -> dict:
    by = {s: [r for r in runs if r["side"] == s] for s in SIDES}
    by = {s: rs for s, rs in by.items() if rs}
    out = {}
    for s, rs in by.items():
        out[s] = {"wall_seconds": [r["wall_seconds"] for r in rs],
                  "cpu_seconds": [r["cpu_seconds"] for r in rs],
                  "dev_accuracy": [r["dev_accuracy"] for r in rs],
                  "wall_median": statistics.median(r["wall_seconds"] for r in rs),
                  "cpu_median": statistics.median(r["cpu_seconds"] for r in rs),
                  "dev_accuracy_mean": round(statistics.mean(r["dev_accuracy"] for r in rs), 4)}
    # the peer at its strongest: the faster of the Trainer configurations run
    peer = min((s for s in out if s != "ronghe"), key=lambda s: out[s]["wall_median"])
    pair_ratios = []
    for a, b in zip(by["ronghe"], by[peer]):
        pair_ratios.append(round(b["wall_seconds"] / a["wall_seconds"], 2))
    out["peer"] = peer
    out["speedup_wall"] = round(out[peer]["wall_median"] / out["ronghe"]["wall_median"], 2)
    out["speedup_cpu"] = round(out[peer]["cpu_median"] / out["ronghe"]["cpu_median"], 2)
    out["speedup_wall_per_pair"] = pair_ratios
    out["speedup_wall_vs"] = {s: round(out[s]["wall_median"] / out["ronghe"]["wall_median"], 2)
                              for s in out if s in SIDES and s != "ronghe"}
    return out


def readme(result: dict, quick: bool) -> str:
    s, spec, info = result["summary"], result["setup"], result["machine"]
    rows = []
    for side, label in (("trainer", "transformers `Trainer` (CLS+pooler head, random batches + "
                                    "`DataCollatorWithPadding`)"),
                        ("trainer-grouped", "the same `Trainer` script with `group_by_length=True`"),
                        ("ronghe", "ronghe `finetune` (mean pooling, length-grouped batches)")):
        d = s.get(side)
        if d is None:
            continue
        rows.append([label, " / ".join(f"{x:.0f}" for x in d["wall_seconds"]),
                     f"{d['wall_median']:.0f}", f"{d['cpu_median']:.0f}",
                     " / ".join(f"{x:.3f}" for x in d["dev_accuracy"])])
    loads = [r["load"]["load1_mean"] for r in result["runs"]]
    prof = result.get("profile")
    lines = [
        "## Fine-tuning speed: ronghe `finetune` vs a plain transformers `Trainer` script",
        "",
        f"SST-2, seeded sample of {spec['n_sample']:,} training sentences, the same 10 % held out for "
        f"validation in both ({spec['n_train']:,} train / {spec['n_valid']:,} validation), dev set "
        f"({spec['n_dev']}) for accuracy. Same model (packaged all-MiniLM-L6-v2), lr 5e-5, batch 32, "
        f"{spec['hp']['epochs']} epoch(s), warm-up 10 %, weight decay 0.01, max_length 128, fp32, "
        "validation after each epoch. Time = model/tokenizer loading + tokenisation + training + "
        "per-epoch validation, each run a fresh process with 2 pinned threads; "
        + ("every side runs once per round, the order rotating between rounds, so a change in "
           "machine load hits all alike." if len(loads) > 2
           else "one run each, back to back."),
        "",
        common.md_table(["", "wall s (each run)", "wall s (median)", "CPU s (median)",
                         "dev accuracy (each run)"], rows),
        "",
        f"**Speed-up of ronghe against the faster Trainer configuration (`{s.get('peer', 'trainer')}`): "
        f"{s['speedup_wall']}x wall time** (per pair: "
        f"{', '.join(map(str, s['speedup_wall_per_pair']))}), {s['speedup_cpu']}x CPU time"
        + ("; against each: " + ", ".join(f"`{k}` {v}x" for k, v in s["speedup_wall_vs"].items())
           if s.get("speedup_wall_vs") else "") + ". The issue's aim is at least 1.5x with equal accuracy.",
        "",
        f"Machine: {common.machine_line(info)}. Mean 1-minute load average during the runs: "
        f"{', '.join(map(str, loads))} ({common.load_note(loads)}).",
        "",
        "Notes: the Trainer model is `AutoModelForSequenceClassification`, i.e. the [CLS] token "
        "through BERT's pooler (the packaged sentence-transformers checkpoint has no trained "
        "pooler, so it starts random) and a linear head; ronghe mean-pools the token states, "
        "the way the model was pre-trained. The Trainer run keeps the last epoch; ronghe "
        "restores the epoch with the best validation macro-F1. The Trainer script saves no "
        "checkpoints (`save_strategy=\"no\"`), which favours it. Where the time goes is "
        "mostly padding: random batches are padded to their longest sentence, ronghe sorts "
        "texts of similar length into the same batch.",
    ]
    roof = result.get("roofline")
    if roof:
        p, peer = roof["peak_gflops"], roof["peer"]
        lines += ["",
                  f"Roofline (`common.peak_gflops`, `common.flops_per_example`): the run's useful "
                  f"work is {roof['useful_tflop']} TFLOP (each training sentence at its own length, "
                  f"mean {roof['mean_train_tokens']} tokens, forward + backward = 3 forward passes, "
                  f"x {spec['hp']['epochs']} epochs, plus the per-epoch validation passes; "
                  "embeddings, softmax, norms and the optimizer left out). At the estimated fp32 "
                  f"peak of the {info.get('threads_used', 2)} pinned threads ({p['fp32']} GFLOP/s: "
                  f"{p['units']}, {p['clock_ghz']} GHz nominal) that is "
                  f"**{roof['compute_bound_seconds']} s with nothing else** - no loading, "
                  "tokenisation, padding, optimizer or Python. Achieved over the whole run: "
                  + ", ".join(f"`{k}` {v['achieved_gflops']} GFLOP/s ({v['percent_of_peak']} % of "
                              "peak)" for k, v in roof["sides"].items())
                  + f". So no fp32 implementation of this training can be more than "
                  f"**{roof['ceiling_speedup_vs_peer']}x** faster than `{peer}` on this CPU, and "
                  f"1.5x would need {roof['percent_of_peak_for_aim']} % of peak sustained over the "
                  "whole run, loading and validation included."]
    if prof:
        pad = prof["padding"]
        lines += ["",
                  f"Padding share of the token positions computed per epoch: random batches "
                  f"{pad['random_batches_dynamic_padding']['pad_share']:.0%}, ronghe's "
                  f"length-grouped batches {pad['ronghe_length_grouped']['pad_share']:.0%} (mean "
                  f"{pad['mean_tokens_per_text']} tokens per text). Step phases in ronghe's loop "
                  f"({prof['steps']} profiled steps): "
                  + ", ".join(f"{k} {v:.0%}" for k, v in prof["phase_share"].items()) + "."]
        var = prof.get("optimizer_variants")
        if var:
            names = {"ronghe_now": "ronghe's loop as it is (fused AdamW since 2026-12-03)",
                     "multi_tensor_adamw": "the multi-tensor AdamW ronghe used before",
                     "fused_adamw": "`torch.optim.AdamW(fused=True)` (the Trainer's default)",
                     "frozen_word_embeddings": "word-embedding matrix frozen",
                     "trainer_network": "the Trainer script's network (CLS + pooler head), "
                                        "fused AdamW"}
            lines += ["", "Seconds per training step (forward + backward + clipping + AdamW, "
                      "same batches, variants taking turns in one process):", "",
                      common.md_table(["variant", "s / step (median)", "vs ronghe now"],
                                      [[names.get(k, k), f"{v:.2f}",
                                        f"{var['relative_to_ronghe_now'][k]:.2f}x"]
                                       for k, v in var["median_step_seconds"].items()])]
    lines += [f"\nNote: {n}" for n in result.get("notes", [])]
    pairs = len(result["runs"]) // 2
    lines += ["", *common.reproduce(
        "python benchmarks/finetune_speed.py"
        f"{'' if pairs == (1 if quick else 2) else f' --pairs {pairs}'}{' --profile' if prof else ''}",
        NAME, quick)]
    return "\n".join(lines)


def main() -> None:
    ap = common.parser(__doc__, "800 examples, 1 epoch, one pair")
    ap.add_argument("--pairs", type=int, default=None, help="A/B pairs (default 2; quick 1)")
    ap.add_argument("--profile", action="store_true", help="profile ronghe's training step")
    ap.add_argument("--sides", default=",".join(SIDES), help=f"from {', '.join(SIDES)}")
    ap.add_argument("--merge", action="store_true",
                    help="keep the saved runs of the sides not run now")
    a = ap.parse_args()
    workers = {"ronghe": worker_ronghe, "trainer": worker_trainer, "profile": worker_profile}
    if common.handled(a, NAME, readme, workers):
        return
    t_start = time.perf_counter()
    info = common.machine_info()
    spec = prepare(a.quick)
    pairs = a.pairs or (1 if a.quick else 2)
    sides = tuple(x for x in SIDES if x in a.sides.split(","))
    order = []
    for p in range(pairs if sides else 0):  # each side once per round, the order rotating between rounds
        order += list(sides[p % len(sides):] + sides[:p % len(sides)])
    runs = [run_worker("ronghe" if kind == "ronghe" else "trainer", {**spec, "side": kind},
                       f"{kind}-{i}") for i, kind in enumerate(order)]
    notes = []
    if a.merge:  # the saved runs of the other sides (said in the notes)
        saved = json.loads(common.result_path(NAME, a.quick).read_text())
        kept = [r for r in saved["runs"] if r["side"] not in sides]
        runs = kept + runs
        notes.append(f"runs of {', '.join(sorted({r['side'] for r in kept}))} kept from the "
                     f"saved run of {saved['machine']['date'][:16]}; "
                     + (f"{', '.join(sides)} re-run" if sides else "only the profile run")
                     + f" on {info['date'][:16]} (same machine)")
        if not sides:
            info = saved["machine"]  # the runs' machine record (load, date) stays theirs
    result = {"benchmark": NAME, "quick": a.quick, "machine": info,
              "setup": {k: v for k, v in spec.items() if k not in ("work", "out_dir")},
              "runs": runs, "summary": summarise(runs), "notes": notes}
    result["roofline"] = roofline(spec, result["summary"])
    if a.profile:
        prof = run_worker("profile", {**spec, "steps": 12}, "profile")
        result["profile"] = prof
        print(prof["profiler_top_ops"])
    print(json.dumps(result["summary"], indent=2))
    common.finish(NAME, result, a, readme, t_start)


if __name__ == "__main__":
    main()
