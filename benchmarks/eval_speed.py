#!/usr/bin/env python3
"""Evaluation speed: batched vs one-at-a-time generation through `medvqa.evaluate.evaluate`.

Both modes run the same code path (`evaluate` on an in-memory data set: image preparation, chat
template, greedy `generate`, predictions written batch by batch, scoring); only `batch_size`
differs (`--batch` vs 1). Model loading is not timed; one warm-up batch runs first.

Models are randomly initialised, so they would stop at an arbitrary point or never: every sample is
forced to generate exactly `--max-new-tokens` tokens by generating without an end-of-sequence token
(`eos_token_id=None`), so both modes do the same work per sample (real answers are a few tokens
long and stop earlier). `min_new_tokens` would force the same length but adds a logits processor
whose per-step cost (a membership test over the 151,936-token vocabulary) swamps a tiny model on CPU.
Images and questions are synthetic (blocky grey noise images of `--image-size`² pixels, VQA-RAD-like questions).

  CPU, tiny model (CI-sized):
    python benchmarks/eval_speed.py
  lent H100, full-size random-init Qwen3-VL-2B over VQA-RAD's 451 test questions:
    python benchmarks/eval_speed.py --device cuda --model qwen3vl2b --samples 451 --sequential-samples 64

`--sequential-samples` times one-at-a-time generation on the first N samples only (its samples/s is
what matters; 451 sequential generations would take minutes on the GPU). One JSON object per run
goes to benchmarks/results/eval_<device>_<model>_<mode>_b<batch>.json (and to $OUT when set); on a shared
CPU, `cpu_s` (process CPU time) and `load_average` say how much of the machine the run actually had.
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUESTIONS = ["Is there a mass?", "Is this a CT scan?", "Where is the lesion located?", "What organ is shown in this image?",
             "Is there evidence of a pneumothorax in the right upper lobe?", "What abnormality is seen in the left kidney?",
             "Are the lungs normal?", "Which side of the brain is affected by the hemorrhage shown here?"]
ANSWERS = ["yes", "no", "left lung", "liver", "no", "cyst", "yes", "right"]


def synthetic_data(n: int, size: int, seed: int = 0):
    "An in-memory medvqa-schema data set of `n` noise images with VQA-RAD-like questions."
    import numpy as np
    from PIL import Image
    from datasets import Dataset
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        small = rng.integers(0, 256, (max(1, size // 8), max(1, size // 8)), dtype=np.uint8)   # blocky grey "scan"
        img = Image.fromarray(small).resize((size, size), Image.Resampling.NEAREST).convert("RGB")
        q, a = QUESTIONS[i % len(QUESTIONS)], ANSWERS[i % len(ANSWERS)]
        rows.append({"id": f"s{i:04d}", "images": [img], "question": q, "answer": a,
                     "answer_type": "closed" if a in ("yes", "no") else "open", "source": "synthetic",
                     "split": "test", "explanation": ""})
    return Dataset.from_list(rows)


def load(model: str, device: str, model_dir: str | None):
    from medvqa.evaluate import Specialist
    from medvqa.builders import build_random_full
    from medvqa.models import get_spec, load_model
    spec = get_spec(model)
    path = None
    if not spec.tiny:
        path = model_dir or str(Path(tempfile.gettempdir()) / f"medvqa-random-{model}")
        t = time.perf_counter()
        build_random_full(spec, path, dtype="bfloat16", device=device)
        print(f"random {model} at {path} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    m, p = load_model(model, model_path=path, device=device, load_in_4bit=False)
    m.eval()
    return Specialist.wrap(m, p, model)


def run(sp, ds, batch: int, tokens: int, out_dir: Path, image_workers: int | None = None) -> tuple[float, float]:
    "(wall seconds, process CPU seconds) of one evaluation (`image_workers`: evaluate's, None its default)."
    import torch
    from medvqa.evaluate import evaluate
    if out_dir.exists(): shutil.rmtree(out_dir)
    if torch.cuda.is_available(): torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    evaluate(sp, data=ds, output_dir=out_dir, batch_size=batch, max_new_tokens=tokens, eos_token_id=None, progress=False,
             image_workers=image_workers)
    if torch.cuda.is_available(): torch.cuda.synchronize()
    return time.perf_counter() - t, time.process_time() - c


def eval_row(sp, mode: str, model: str, device_name: str, batch: int, samples: int, wall: float, cpu_s: float,
             tokens: int, size: int, load_s: float, **extra) -> dict:
    "One result row (`kind: eval`) of an evaluation timed by `run`; `extra` fields are added (eval_profile.py's)."
    import torch
    from medvqa.core import library_versions
    cuda = sp.model.device.type == "cuda"
    return {"kind": "eval", "mode": mode, "model": model, "device": sp.model.device.type, "device_name": device_name,
            "batch": batch, **extra, "samples": samples, "samples_per_s": samples / wall, "wall_s": wall, "cpu_s": cpu_s,
            "max_new_tokens": tokens, "forced_new_tokens": "eos_token_id=None", "image_size": size,
            "dtype": str(sp.model.dtype).replace("torch.", ""), "load_s": load_s,
            "threads": torch.get_num_threads(), "load_average": os.getloadavg()[0],
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
            "versions": {k: v for k, v in library_versions().items() if v},
            "note": "random-init weights; every sample forced to generate max_new_tokens tokens (no end-of-sequence "
                    "token); synthetic noise images and questions; timed through medvqa.evaluate.evaluate, model load "
                    "excluded"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--model", default=None, help="registry key (default: tiny-qwen2vl on cpu, qwen3vl2b on cuda)")
    ap.add_argument("--samples", type=int, default=None, help="samples in the batched run (default 64 cpu, 451 cuda)")
    ap.add_argument("--sequential-samples", type=int, default=None, help="samples in the one-at-a-time run (default: same as --samples on cpu, 64 on cuda)")
    ap.add_argument("--batch", type=int, nargs="+", default=[16], help="batch size(s) of the batched run")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="tokens generated per sample, forced (default 16 cpu, 32 cuda)")
    ap.add_argument("--image-size", type=int, default=None, help="side of the square synthetic images (default 64 cpu, 448 cuda)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default 1 on cpu: robust on a shared machine, "
                    "where spinning OpenMP threads inflate times)")
    ap.add_argument("--model-dir", help="where the random full-size model is built (cached)")
    ap.add_argument("--results", default=str(HERE / "results"))
    a = ap.parse_args(argv)
    cuda = a.device == "cuda"
    model = a.model or ("qwen3vl2b" if cuda else "tiny-qwen2vl")
    samples = a.samples or (451 if cuda else 64)
    seq_samples = a.sequential_samples or (64 if cuda else samples)
    tokens = a.max_new_tokens or (32 if cuda else 16)
    size = a.image_size or (448 if cuda else 64)

    import torch
    if cuda and not torch.cuda.is_available(): sys.exit("--device cuda: no CUDA GPU here")
    threads = torch.get_num_threads()
    if a.threads or not cuda: torch.set_num_threads(a.threads or 1)
    try: return _bench(a, cuda, model, samples, seq_samples, tokens, size)
    finally: torch.set_num_threads(threads)        # main() is also called in-process by the tests


def _bench(a, cuda, model, samples, seq_samples, tokens, size):
    import torch
    from medvqa.core import atomic_write_json
    t = time.perf_counter(); sp = load(model, a.device, a.model_dir); load_s = time.perf_counter() - t
    ds = synthetic_data(max(samples, seq_samples), size)
    work = Path(tempfile.mkdtemp(prefix="medvqa-evalspeed-"))
    run(sp, ds.select(range(min(4, len(ds)))), min(4, len(ds)), tokens, work / "warmup")     # kernels, caches

    device_name = torch.cuda.get_device_name(0) if cuda else (platform.processor() or platform.machine())
    results = []
    for mode, batch, n in [("batched", b, samples) for b in a.batch] + [("sequential", 1, seq_samples)]:
        if cuda: torch.cuda.reset_peak_memory_stats()
        wall, cpu_s = run(sp, ds.select(range(n)), batch, tokens, work / f"{mode}-{batch}")
        r = eval_row(sp, mode, model, device_name, batch, n, wall, cpu_s, tokens, size, load_s)
        results.append(r)
        name = f"eval_{a.device}_{model}_{mode}_b{batch}.json"
        for d in [a.results] + ([os.environ["OUT"]] if os.environ.get("OUT") else []):
            atomic_write_json(Path(d) / name, r)
        print(f"{mode:10s} batch {batch:3d}: {n} samples in {wall:7.2f} s = {n / wall:7.2f} samples/s "
              f"(process CPU {cpu_s:.1f} s, load average {r['load_average']:.1f})", flush=True)
    seq = results[-1]["samples_per_s"]
    for r in results[:-1]:
        print(f"batch {r['batch']}: {r['samples_per_s'] / seq:.1f}x one-at-a-time", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
