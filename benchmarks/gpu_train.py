#!/usr/bin/env python
"""GPU training benchmark: Unsloth vs transformers+PEFT+TRL, and the seed's batch 2x4 vs medvqa's automatic batch.

Trains the full-size architectures of `qwen2vl2b-4bit` (4-bit) and `qwen3vl2b` (bf16), randomly initialised
(`medvqa.models.build_random_full`: no weights can be downloaded), for the seed's step counts (60 and 40), on the same
synthetic lesion data (one 448x448 image per sample, the seed's effective batch of 8), with:
  backend unsloth and hf  x  batch "seed" (2 x 4) and "auto" (medvqa's default: largest per-device batch that fits).
Every run is a fresh subprocess (Unsloth patches transformers for the whole process), timed end to end (load and
first-step compilation included). One JSON object per run is printed and appended to OUT/gpu_train.jsonl, where OUT is
--out, else $OUT, else benchmarks/results.

  python benchmarks/gpu_train.py                                   # everything (8 runs; may need > 10 min)
  python benchmarks/gpu_train.py --models qwen3vl2b --backends unsloth,hf --batches auto
  python benchmarks/gpu_train.py --tiny --steps 3                  # CPU smoke test with the tiny models (hf only)
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODELS = ("qwen2vl2b-4bit", "qwen3vl2b")
TINY = {"qwen2vl2b-4bit": "tiny-qwen2vl", "qwen3vl2b": "tiny-qwen3vl"}
BATCHES = {"seed": (2, 4), "auto": (None, None)}


def records(n: int, size: int):
    from medvqa.synthetic import make_synthetic
    return make_synthetic(n, seed=0, size=size, split="train")


def run_one(cfg: dict) -> dict:
    "Child process: one training run; returns the benchmark row."
    t0 = time.time()
    if cfg["backend"] == "unsloth":
        import unsloth  # noqa: F401  (first, so that it patches transformers and trl)
    from medvqa.train import train
    from medvqa.models import get_spec
    spec = get_spec(cfg["key"])
    s = train(cfg["key"], data=records(cfg["n_samples"], cfg["image_size"]), curriculum="open_then_closed",
              output_dir=cfg["run_dir"], max_steps=cfg["steps"] or spec.max_steps, backend=cfg["backend"],
              batch_size=cfg["batch"], grad_accum=cfg["grad_accum"], model_path=cfg["model_dir"], save_steps=10**6,
              load_in_4bit=cfg["load_in_4bit"], seed=0, overwrite=True)      # a benchmark run replaces the last one
    return {"model": cfg["model"], "key": cfg["key"], "backend": s["backend"], "quant": cfg["quant"],
            "batch_mode": cfg["batch_mode"], "batch": s["batch_size"], "grad_accum": s["grad_accum"],
            "effective_batch": s["effective_batch"], "steps": s["steps"], "tokens_per_s": s["tokens_per_s"],
            "samples_per_s": s["samples_per_s"], "peak_gib": s["peak_memory_gib"], "mfu": s["mfu"],
            "first_loss": s["first_loss"], "final_loss": s["final_loss"], "loss_finite": s["loss_finite"],
            "load_s": s["load_s"], "first_step_s": s["first_step_s"], "train_s": s["train_s"],
            "wall_s": round(time.time() - t0, 2), "optimizer": s["optimizer"], "params": s["params"],
            "linear4bit": s.get("linear4bit"), "max_seq_len": s["max_seq_len"], "image_size": cfg["image_size"],
            "device": s["device"], "versions": s["versions"], "status": "ok"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--backends", default="unsloth,hf")
    ap.add_argument("--batches", default="seed,auto", help="seed (2x4) and/or auto (medvqa's default)")
    ap.add_argument("--steps", type=int, default=None, help="default: the seed's step count of each model")
    ap.add_argument("--image-size", type=int, default=448)
    ap.add_argument("--samples", type=int, default=256, help="distinct samples (the stream cycles through them)")
    ap.add_argument("--tiny", action="store_true", help="the tiny models on CPU instead of full-size ones")
    ap.add_argument("--work", default=None, help="where random models and runs go (default: $MEDVQA_CACHE/bench or /tmp)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per run")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        cfg = json.loads(a.one)
        try: row = run_one(cfg)
        except Exception as e:
            import traceback; traceback.print_exc()
            row = {"model": cfg["model"], "backend": cfg["backend"], "quant": cfg["quant"], "batch_mode": cfg["batch_mode"],
                   "status": "failed", "error": f"{type(e).__name__}: {e}"}
        print("RESULT " + json.dumps(row), flush=True)
        return

    import torch
    from medvqa.core import library_versions
    from medvqa.models import build_random_full, tiny_model_dir, get_spec
    has_cuda = torch.cuda.is_available()
    out = Path(a.out or os.environ.get("OUT") or ROOT / "benchmarks" / "results"); out.mkdir(parents=True, exist_ok=True)
    work = Path(a.work or "/tmp/medvqa-bench"); work.mkdir(parents=True, exist_ok=True)
    results = out / "gpu_train.jsonl"
    print(f"device: {torch.cuda.get_device_name(0) if has_cuda else 'cpu'}; results -> {results}", flush=True)
    print(json.dumps(library_versions()), flush=True)
    for model in a.models.split(","):
        key = TINY[model] if a.tiny else model
        spec = get_spec(key)
        t0 = time.time()
        model_dir = tiny_model_dir(key) if a.tiny else build_random_full(key, work / "models" / key, device="cuda" if has_cuda else None)
        print(f"{model}: model ready in {time.time() - t0:.1f} s at {model_dir}", flush=True)
        q4 = bool(get_spec(model).load_in_4bit and has_cuda and not a.tiny)
        quant = "4bit" if q4 else ("bf16" if has_cuda else "fp32")
        for backend in a.backends.split(","):
            for mode in a.batches.split(","):
                b, g = BATCHES[mode]
                cfg = {"model": model, "key": key, "backend": backend, "batch_mode": mode, "batch": b, "grad_accum": g,
                       "steps": a.steps, "image_size": a.image_size, "n_samples": a.samples, "model_dir": str(model_dir),
                       "load_in_4bit": q4, "quant": quant, "run_dir": str(work / "runs" / f"{model}.{backend}.{mode}")}
                if backend == "unsloth" and not has_cuda:
                    row = dict(model=model, backend=backend, quant=quant, batch_mode=mode, status="skipped",
                               error="unsloth needs a CUDA GPU")
                else:
                    t1 = time.time()
                    p = subprocess.run([sys.executable, __file__, "--one", json.dumps(cfg)], capture_output=True, text=True,
                                       timeout=a.timeout)
                    lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
                    row = json.loads(lines[-1][7:]) if lines else dict(
                        model=model, backend=backend, quant=quant, batch_mode=mode, status="failed",
                        error=f"exit {p.returncode}: {p.stderr[-2000:]}")
                    if row.get("status") != "ok": row["stderr_tail"] = p.stderr[-3000:]
                    row["process_s"] = round(time.time() - t1, 2)
                with open(results, "a") as f: f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
