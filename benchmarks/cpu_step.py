#!/usr/bin/env python3
"""CPU training step of the tiny models, three ways of computing the loss, side by side in one process:

- full:        logits at every position (transformers' own loss, TRL's `nll` path with its per-token entropy
               and accuracy over the full logits): medvqa before answer-only logits;
- chunked_nll: TRL's chunked loss (labelled positions only, in chunks of 256 rows, recomputed in backward);
- answer_only: medvqa's `patch_answer_only_loss` (labelled positions only, one matmul): medvqa now.

Each variant runs `medvqa.train.train` (hf backend, registry settings: full fine-tuning, batch 16) on the shipped demo
data for --steps steps; steady time per step excludes the first step. Variants alternate model by model, so machine
load hits them alike.

    python benchmarks/cpu_step.py --steps 25

Writes benchmarks/results/cpu_step.json.
"""
from __future__ import annotations
import argparse, json, os, platform, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
VARIANTS = ("full", "chunked_nll", "answer_only")


def run(key, variant, steps):
    import medvqa.train as T
    orig = (T.patch_answer_only_loss, T.ordered_trainer, T._sft_config)
    if variant != "answer_only":
        T.patch_answer_only_loss = lambda m: m
        T.ordered_trainer = lambda cls, answer_only=False: orig[1](cls, answer_only=False)
        def cfg(*a, **k):
            c = orig[2](*a, **k); c.loss_type = "nll" if variant == "full" else "chunked_nll"; return c
        T._sft_config = cfg
    try:
        s = T.train(key, output_dir=Path(tempfile.mkdtemp()) / "r", max_steps=steps, backend="hf", save_steps=10**6)
    finally: T.patch_answer_only_loss, T.ordered_trainer, T._sft_config = orig
    return {"model": key, "variant": variant, "steps": s["steps"], "batch_size": s["batch_size"], "train_s": s["train_s"],
            "first_step_s": s["first_step_s"], "steady_s_per_step": round((s["train_s"] - s["first_step_s"]) / (s["steps"] - 1), 4),
            "tokens_per_s": s["tokens_per_s"], "max_seq_len": s["max_seq_len"], "first_loss": s["first_loss"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--models", default="tiny-qwen3vl,tiny-qwen2vl")
    a = ap.parse_args(argv)
    import torch
    rows, load0 = [], os.getloadavg()[0]
    for key in a.models.split(","):
        for v in VARIANTS:
            rows.append(run(key, v, a.steps)); print(json.dumps(rows[-1]), flush=True)
    speedup = {k: {v: round(next(r for r in rows if r["model"] == k and r["variant"] == "full")["steady_s_per_step"]
                            / next(r for r in rows if r["model"] == k and r["variant"] == v)["steady_s_per_step"], 2)
                   for v in VARIANTS} for k in a.models.split(",")}
    out = {"benchmark": "cpu training step", "device": f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores, {platform.machine()})",
           "how": __doc__.split("\n\n")[1], "rows": rows, "speedup_over_full": speedup,
           "load_avg_1min": {"start": round(load0, 2), "end": round(os.getloadavg()[0], 2)}}
    (HERE / "results" / "cpu_step.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(speedup))


if __name__ == "__main__":
    main()
