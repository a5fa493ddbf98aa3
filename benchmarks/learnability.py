#!/usr/bin/env python3
"""Learnability: does a tiny model learn to read the synthetic lesion scans through medvqa's normal training API?

Trains a tiny Qwen-VL model with LoRA (`medvqa.train.train`, hf backend, CPU) on `medvqa.synthetic` samples,
evaluates it on held-out synthetic samples (`medvqa.evaluate.evaluate`), and compares closed accuracy with the
majority baseline (0.50: every question text has balanced answers) and with the untrained model.

The tiny model is the registry's `tiny-qwen3vl` with LoRA widened to the output head and the input embeddings
(`medvqa.learnability.learnable_spec`): a randomly initialised 64-wide model cannot make a confident token with
LoRA on its linear layers alone (see nbs/11_learnability.ipynb).

    python benchmarks/learnability.py                       # the default configuration, about 10 minutes on 2 cores
    python benchmarks/learnability.py --steps 60 --tag quick

Writes benchmarks/results/learnability[_TAG].json.
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-qwen3vl")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=1024)
    ap.add_argument("--n-test", type=int, default=128)
    ap.add_argument("--size", type=int, default=64, help="synthetic image side in pixels")
    ap.add_argument("--curriculum", default="mixed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--registry-only", action="store_true", help="use the registry's LoRA targets unchanged")
    ap.add_argument("--drop", default="", help="comma-separated LoRA targets to leave out, e.g. q_proj,k_proj")
    ap.add_argument("--modules-to-save", default="", help="comma-separated modules trained in full instead of through "
                    "LoRA, e.g. visual (LoRA targets inside them are dropped)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--keep", default=None, help="folder to keep the adapter and predictions in")
    a = ap.parse_args(argv)

    import torch
    from datasets import Dataset
    from medvqa.learnability import learnable_spec, learn
    from medvqa.models import get_spec
    from medvqa.synthetic import make_synthetic

    t0 = time.time()
    spec = get_spec(a.model) if a.registry_only else learnable_spec(a.model, learning_rate=a.lr)
    if a.drop:
        from dataclasses import replace
        spec = replace(spec, target_modules=tuple(t for t in spec.target_modules if t not in a.drop.split(",")))
    mts = tuple(m for m in a.modules_to_save.split(",") if m)
    if mts:
        from dataclasses import replace
        from medvqa.models import VISION_TARGETS
        spec = replace(spec, target_modules=tuple(t for t in spec.target_modules if t not in VISION_TARGETS))
    train_recs = make_synthetic(a.n_train, seed=a.seed, size=a.size, split="train", explain=0.0)
    test_recs = make_synthetic(a.n_test, seed=a.seed, size=a.size, split="test", explain=0.0)
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="medvqa-learnability-"))
    if work.exists() and a.keep: shutil.rmtree(work)
    res = learn(spec, train_recs, test_recs, work, max_steps=a.steps, learning_rate=a.lr, batch_size=a.batch_size,
                grad_accum=a.grad_accum, curriculum=a.curriculum, seed=a.seed,
                **({"modules_to_save": mts} if mts else {}))
    wall = time.time() - t0
    out = {"benchmark": "learnability", "model": a.model, "device": f"cpu ({torch.get_num_threads()} threads, "
           f"{os.cpu_count()} cores, {platform.machine()})",
           "config": {"steps": a.steps, "learning_rate": a.lr, "batch_size": a.batch_size, "grad_accum": a.grad_accum,
                      "n_train": a.n_train, "n_test": a.n_test, "image_size": a.size, "curriculum": a.curriculum,
                      "seed": a.seed, "explanations": False, "lora": res["train"]["lora"]},
           "steps": res["train"]["steps"], "wall_s": round(wall, 1), "train_s": res["train"]["train_s"],
           "closed_accuracy": res["trained"]["closed"]["accuracy"],
           "closed_accuracy_ci": res["trained"]["ci"].get("closed.accuracy"),
           "open": res["trained"]["open"], "exact_match": res["trained"]["exact_match"],
           "majority_baseline": res["majority_baseline"], "text_only_ceiling": res["text_only_ceiling"],
           "untrained_closed_accuracy": res["untrained"]["closed"]["accuracy"],
           "untrained_open": res["untrained"]["open"],
           "first_loss": res["train"]["first_loss"], "final_loss": res["train"]["final_loss"],
           "target": {"closed_accuracy": 0.90, "wall_s": 600},
           "load_avg_1min_at_end": round(os.getloadavg()[0], 2),
           "note": "2-core machine shared with other jobs while measured: wall times are upper bounds"}
    out["target_met"] = bool(out["closed_accuracy"] is not None and out["closed_accuracy"] >= 0.90 and wall <= 600)
    dest = HERE / "results" / f"learnability{('_' + a.tag) if a.tag else ''}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("closed_accuracy", "untrained_closed_accuracy", "majority_baseline", "steps", "wall_s")}))
    print(f"-> {dest}")
    if not a.keep: shutil.rmtree(work, ignore_errors=True)
    return out


if __name__ == "__main__":
    main()
