#!/usr/bin/env python
"""GPU training benchmark (issue 13): medvqa's `train` on full-size random-weight models, steady state and end to end.

Runs, by plan (Unsloth patches transformers for a whole process, so each model and backend has a process of its own):
  recipe    the original work's literal recipe (Unsloth, batch 2 x 4) against medvqa's default (Unsloth, automatic batch: 8 x 1),
            same model, same effective batch of 8: qwen3vl2b (bf16) and qwen2vl2b-4bit (4-bit)
  backends  the hf backend at medvqa's default batch, bf16 and 4-bit (the Unsloth side is the recipe plan's default run)
  sweep     Unsloth at batch 16, 32, 64 (qwen3vl2b bf16), 32, 64 (qwen8b 4-bit; 8 is the e2e run) and 8, 32, 64
            (qwen8b bf16), accumulation 1
  workers0  medvqa's default with the DataLoader at 0 workers (the data pipeline back on the critical path);
            hf-workers0 the same for the hf backend
  profile   medvqa's default, Unsloth, qwen3vl2b, with the torch profiler over steps 6-8 (MEDVQA_PROFILE)
  variants  against medvqa's default (plan recipe: checkpointing off where the activations fit, fused AdamW for LoRA on a
            GPU): the original work's 8-bit AdamW (adamw-8bit) and medvqa's earlier default (baseline: Unsloth's offloaded
            checkpointing, 8-bit AdamW)
  e2e       qwen8b end to end: train (4-bit Unsloth, default batch), evaluate a few samples, merged export verified
Runs of one model and backend share a process, after a short warm-up run (--warmup) that pays the imports and
compilation; steady rates also exclude the first two optimiser steps of each run; MFU = 6 x parameters x steady tokens/s
/ 790 TFLOP/s. With --gpus 0,1,2,3 the runs are spread over the GPUs, one run per GPU at a time (each run sees one GPU).
One JSON object per run is printed and appended to OUT/gpu_train.jsonl (OUT: --out, else $OUT, else benchmarks/results).

  python benchmarks/gpu_train.py --plans recipe,backends --steps 12
  python benchmarks/gpu_train.py --plans sweep,e2e --gpus 0,1,2,3
  python benchmarks/gpu_train.py --tiny --plans recipe --steps 4        # CPU smoke test (tiny models, hf backend)
  python benchmarks/gpu_train.py --plans backends --packing             # the hf runs with packed batches
  python benchmarks/gpu_train.py --plans backends --models qwen3vl2b --mix realistic [--packing]   # issue 26's mix
With --packing the hf runs pack their batches (several samples a row, medvqa's `packing`; Unsloth's runs stay as they
are: it cannot pack), one row a batch whose samples medvqa's variable-length attention keeps apart (torch's flash
kernel); every row records "packing", the batches' "padding_fraction" (padding tokens / all tokens) and the language
model's "attn_implementation", so a packed and an unpacked call compare.
"""
from __future__ import annotations
import argparse, json, os, queue, subprocess, sys, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = {"qwen2vl2b-4bit": "tiny-qwen2vl", "qwen3vl2b": "tiny-qwen3vl", "qwen8b": "tiny-qwen3vl"}
FIELDS = ("model", "backend", "quant", "batch", "grad_accum", "recipe", "steady_samples_per_s", "steady_tokens_per_s",
          "mfu", "peak_gib", "first_step_s", "wall_s", "device", "status", "packing", "padding_fraction",
          "attn_implementation")


def plan_runs(plans: list[str]) -> list[dict]:
    "The run configurations of the named plans (model, backend, quant, batch, grad_accum, recipe, env, kind)."
    R = []
    def add(model, backend, quant, batch, accum, recipe, **kw): R.append(dict(model=model, backend=backend, quant=quant,
                                                                             batch=batch, grad_accum=accum, recipe=recipe, **kw))
    for p in plans:
        if p == "recipe":
            for m, q in (("qwen3vl2b", "bf16"), ("qwen2vl2b-4bit", "4bit")):
                add(m, "unsloth", q, 2, 4, "seed", optim="adamw_8bit", gradient_checkpointing=True)   # Unsloth's offloaded kind
                add(m, "unsloth", q, None, None, "default")
        elif p == "backends":
            for m, q in (("qwen3vl2b", "bf16"), ("qwen2vl2b-4bit", "4bit")): add(m, "hf", q, None, None, "default")
        elif p == "sweep":
            for b in (16, 32, 64): add("qwen3vl2b", "unsloth", "bf16", b, 1, "sweep")
            for q in ("4bit", "bf16"):
                for b in ((32, 64) if q == "4bit" else (8, 32, 64)): add("qwen8b", "unsloth", q, b, 1, "sweep")  # 4-bit x 8: plan e2e
        elif p == "workers0":
            add("qwen3vl2b", "unsloth", "bf16", None, None, "default", env={"MEDVQA_DATALOADER_WORKERS": "0"}, variant="workers0")
        elif p == "hf-workers0":
            add("qwen3vl2b", "hf", "bf16", None, None, "default", env={"MEDVQA_DATALOADER_WORKERS": "0"}, variant="workers0")
        elif p == "profile":
            add("qwen3vl2b", "unsloth", "bf16", None, None, "default", env={"MEDVQA_PROFILE": "6-8"}, variant="profile")
        elif p == "profile-hf":
            add("qwen3vl2b", "hf", "bf16", None, None, "default", env={"MEDVQA_PROFILE": "6-8"}, variant="profile")
        elif p == "variants":       # candidate remedies for what the profile shows, against medvqa's default run in the same call
            add("qwen3vl2b", "unsloth", "bf16", None, None, "default", variant="adamw-8bit", optim="adamw_8bit")
            add("qwen3vl2b", "unsloth", "bf16", None, None, "default", variant="baseline", optim="adamw_8bit",  # the earlier default
                gradient_checkpointing=True)
        elif p == "e2e":
            add("qwen8b", "unsloth", "4bit", 8, 1, "sweep", kind="e2e")
        else: raise SystemExit(f"unknown plan {p!r}")
    return R


def group_runs(cfgs: list[dict], share: bool = True) -> list[list[dict]]:
    "Runs that share a child process: same model and backend (Unsloth patches the whole process), in plan order."
    if not share: return [[c] for c in cfgs]
    groups: dict = {}
    for c in cfgs: groups.setdefault((c["model"], c["backend"], c.get("kind", "train")), []).append(c)
    return list(groups.values())


_WORDS = ("the lesion shows a well defined margin with surrounding oedema and no calcification in the adjacent "
          "parenchyma while the contralateral side appears normal on this axial slice of the scan").split()

def records(n: int, size: int, mix: str = "synthetic"):
    """`n` training records: the synthetic demo set as it is (`mix="synthetic"`), or a realistic mix of lengths
    (`mix="realistic"`): as VQA-RAD, short answers to one image; every third record a PubMedVision-style explanation
    of 80-320 words; every fifth two or three images."""
    import random
    from medvqa.synthetic import make_synthetic
    recs = make_synthetic(n, seed=0, size=size, split="train")
    if mix == "synthetic": return recs
    rng = random.Random(0)
    for i, r in enumerate(recs):
        r["explanation"] = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(80, 320))) if i % 3 == 0 else ""
        if i % 5 == 0: r["images"] = r["images"] * rng.choice((2, 3))
    return recs


def run_one(cfg: dict) -> dict:
    "Child process: one training run (and, for kind e2e, evaluation and merged export); returns the benchmark row."
    t0 = time.time()
    if cfg["backend"] == "unsloth": import unsloth  # noqa: F401  (first, so that it patches transformers and trl)
    import torch
    from medvqa.builders import build_random_full, tiny_model_dir
    from medvqa.models import get_spec
    from medvqa.train import train
    has_cuda = torch.cuda.is_available()
    key = cfg["key"]
    spec = get_spec(key)
    model_dir = tiny_model_dir(spec) if cfg["tiny"] else build_random_full(spec, Path(cfg["work"]) / "models" / key, device="cuda")
    t_model = time.time() - t0
    run_dir = Path(cfg["run_dir"])
    saved_env = dict(os.environ)
    os.environ.update(cfg.get("env", {}))
    t_call = time.time()
    try: s = train(key, data=records(cfg["samples"], cfg["image_size"], cfg.get("mix", "synthetic")), curriculum="open_then_closed", output_dir=run_dir,
              max_steps=cfg["steps"], backend=cfg["backend"], batch_size=cfg["batch"], grad_accum=cfg["grad_accum"],
              model_path=str(model_dir), save_steps=10**6, load_in_4bit=cfg["quant"] == "4bit", seed=0, overwrite=True, method="lora",
              optim=cfg.get("optim"), gradient_checkpointing=cfg.get("gradient_checkpointing"),
              packing=bool(cfg.get("packing")), max_length=cfg.get("max_length"))
    finally:
        os.environ.clear(); os.environ.update(saved_env)
    row = {k: cfg[k] for k in ("model", "backend", "quant", "recipe")}
    row["train_call_s"] = round(time.time() - t_call, 2)       # train() from call to return, its teardown included
    row.update(gradient_checkpointing=s["gradient_checkpointing"],      # on Unsloth, its offloaded kind
               unsloth_gc=("unsloth" if s["gradient_checkpointing"] else False) if cfg["backend"] == "unsloth" else None)
    row.update(batch=s["batch_size"], grad_accum=s["grad_accum"], steady_samples_per_s=s["steady_samples_per_s"],
               steady_tokens_per_s=s["steady_tokens_per_s"], mfu=s["steady_mfu"], peak_gib=s["peak_memory_gib"],
               first_step_s=s["first_step_s"], wall_s=round(time.time() - t0, 2), device=s["device"], status="ok",
               samples_per_s=s["samples_per_s"], tokens_per_s=s["tokens_per_s"], e2e_samples_per_s=None,
               steps=s["steps"], effective_batch=s["effective_batch"], load_s=s["load_s"], train_s=s["train_s"],
               model_ready_s=round(t_model, 2), dataloader_workers=s["dataloader_workers"], loss=s["loss"],
               loader_stop_s=s.get("loader_stop_s"), first_loss=s["first_loss"], final_loss=s["final_loss"], loss_finite=s["loss_finite"], params=s["params"],
               linear4bit=s["linear4bit"], max_seq_len=s["max_seq_len"], image_size=cfg["image_size"], optimizer=s["optimizer"],
               variant=cfg.get("variant"), kind=cfg.get("kind", "train"), versions=s["versions"],
               packing=s.get("packing", False), padding_fraction=s.get("padding_fraction"), mix=cfg.get("mix", "synthetic"),
               attn_implementation=s.get("attn_implementation"),
               max_length=cfg.get("max_length"))
    row["e2e_samples_per_s"] = round(s["samples_seen"] / row["wall_s"], 4)
    prof = run_dir / "profile" / "profile.json"
    if prof.exists():
        row["profile"] = json.loads(prof.read_text())
        if cfg.get("out"):                   # the op tables beside the results, named by run
            import shutil
            for t in ("gpu", "cpu"):
                f = prof.parent / f"ops_{t}.txt"
                if f.exists(): shutil.copy(f, Path(cfg["out"]) / f"gpu_profile_{cfg['model']}_{cfg['backend']}_b{row['batch']}_ops_{t}.txt")
    if cfg.get("kind") == "e2e":
        from medvqa.evaluate import evaluate
        from medvqa.train import export_merged
        from datasets import Dataset
        import gc; gc.collect()
        if has_cuda: torch.cuda.empty_cache()
        t1 = time.time()
        m = evaluate(key, data=Dataset.from_list(records(16, cfg["image_size"])), adapter=run_dir, split=None, output_dir=run_dir / "eval",
                     batch_size=8, max_new_tokens=8, model_path=str(model_dir), progress=False)
        t2 = time.time()
        gc.collect()
        if has_cuda: torch.cuda.empty_cache()
        info = export_merged(key, run_dir, Path(cfg["work"]) / "merged" / key, model_path=str(model_dir), overwrite=True)
        row.update(eval_samples=m["n"], eval_s=round(t2 - t1, 2), export_s=round(time.time() - t2, 2),
                   export=info, wall_s=round(time.time() - t0, 2))
        import shutil; shutil.rmtree(Path(cfg["work"]) / "merged" / key, ignore_errors=True)
    return row


def _failed(cfg, err):
    return {k: cfg.get(k) for k in ("model", "backend", "quant", "batch", "grad_accum", "recipe", "variant", "packing")} | {
        "status": "failed", "error": err[-1500:]}


def _run_group(group, env, lane_dir, seconds):
    "Run one group in a child process; yield each run's row as it finishes, then a row for each run it did not finish."
    t1, done, killed = time.time(), 0, threading.Event()
    err_path = lane_dir / "stderr.txt"
    with open(err_path, "w") as err:
        p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(group)],
                             stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=lane_dir)
        killer = threading.Timer(seconds, lambda: (killed.set(), p.kill())); killer.start()
        for line in p.stdout:                      # one RESULT line per finished run
            if line.startswith("RESULT "):
                yield json.loads(line[7:]) | {"process_s": round(time.time() - t1, 2)}
                t1, done = time.time(), done + 1
        p.wait(); killer.cancel()
    for c in group[done:]:
        row = _failed(c, err_path.read_text()[-3000:])
        if killed.is_set(): row["status"] = "not finished: stopped at --deadline or --timeout"
        yield row


def _lane(gpu, jobs: "queue.Queue", a, results, lock, n_lanes):
    "Take groups of runs off the queue; each group runs in one child process, its rows written as they come."
    while True:
        try: group = jobs.get_nowait()
        except queue.Empty: return
        env = {**os.environ}
        lane_dir = Path(a.work) / f"lane{gpu if gpu is not None else 0}"; lane_dir.mkdir(parents=True, exist_ok=True)
        if gpu is not None: env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        env["UNSLOTH_COMPILE_LOCATION"] = str(lane_dir / "unsloth_compiled_cache")
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        left = a.deadline - time.time()
        rows = (_run_group(group, env, lane_dir, min(left - 30, a.timeout * len(group))) if left >= 60 else
                (_failed(c, "") | {"status": "not run: the benchmark's --deadline came first"} for c in group))
        for row in rows: _record(row, gpu, a, results, lock, n_lanes)


def _record(row, gpu, a, results, lock, n_lanes):
    row.update(gpu=gpu, concurrent_runs=n_lanes)
    with lock:
        with open(a.results, "a") as f: f.write(json.dumps(row) + "\n")
        results.append(row)
        print(json.dumps({k: row.get(k) for k in FIELDS + ("variant", "gpu", "error")}), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plans", default="recipe,backends,sweep,e2e,profile,workers0,variants")
    ap.add_argument("--steps", type=int, default=12, help="optimiser steps per run (steady rate over all but the first 2)")
    ap.add_argument("--image-size", type=int, default=448)
    ap.add_argument("--samples", type=int, default=256, help="distinct samples (the stream cycles through them)")
    ap.add_argument("--gpus", default=None, help="comma-separated GPU ids to spread the runs over (default: one lane)")
    ap.add_argument("--models", default=None, help="only the plans' runs of these registry models (comma-separated), in this order")
    ap.add_argument("--tiny", action="store_true", help="the tiny models on CPU, hf backend (a smoke test)")
    ap.add_argument("--work", default="/tmp/medvqa-bench")
    ap.add_argument("--out", default=None)
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per run")
    ap.add_argument("--deadline", type=float, default=None, help="seconds from now after which no run starts or goes on")
    ap.add_argument("--process-per-run", action="store_true",
                    help="each run in its own process (default: the runs of one model and backend share one, in plan order)")
    ap.add_argument("--warmup", type=int, default=4, help="steps of an unmeasured first run in each process (0: none)")
    ap.add_argument("--packing", action="store_true",
                    help="pack each batch's samples into rows (medvqa's packing; hf backend): rows record padding_fraction")
    ap.add_argument("--mix", default="synthetic", choices=("synthetic", "realistic"),
                    help="the training records: the synthetic demo set, or a realistic mix of lengths (short answers, "
                         "long explanations, some samples with 2-3 images)")
    ap.add_argument("--max-length", type=int, default=None,
                    help="medvqa's max_length: tokens a sample may have (packed batches stay one row each)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:                              # child: the runs of one group, in order, in this process
        group = json.loads(a.one)
        teardown = None
        for i, cfg in enumerate(group):
            try: row = run_one(cfg)
            except Exception as e:
                import traceback; traceback.print_exc()
                row = _failed(cfg, f"{type(e).__name__}: {e}")
            row["process_run"] = i                 # 0: this run paid the process's imports and first compilation
            row["previous_teardown_s"] = teardown  # freeing the previous run of this process (garbage collection, cache)
            print("RESULT " + json.dumps(row), flush=True)
            t = time.time()
            import gc; gc.collect()
            try:
                import torch; torch.cuda.empty_cache()
            except Exception: pass
            teardown = round(time.time() - t, 2)
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(0)                            # skip interpreter teardown (DataLoader workers, compile pools): tens of seconds
    out = Path(a.out or os.environ.get("OUT") or ROOT / "benchmarks" / "results"); out.mkdir(parents=True, exist_ok=True)
    a.results = out / "gpu_train.jsonl"
    runs = plan_runs(a.plans.split(","))
    if a.models: runs = [r for r in runs if r["model"] in a.models.split(",")]
    jobs = queue.Queue()
    cfgs = []
    for i, r in enumerate(runs):
        key = TINY[r["model"]] if a.tiny else r["model"]
        if a.tiny: r.update(backend="hf", quant="fp32")
        tag = f"{i:02d}.{r['model']}.{r['backend']}.{r['quant']}.{r['recipe']}.{r['batch']}x{r['grad_accum']}.{r.get('variant') or ''}"
        if a.packing and r["backend"] == "hf": r["packing"] = True; tag += ".packed"
        cfgs.append(dict(r, key=key, tiny=a.tiny, steps=a.steps, image_size=a.image_size, samples=a.samples, work=a.work, out=str(out),
                         mix=a.mix, max_length=a.max_length,
                         run_dir=str(Path(a.work) / "runs" / tag)))
    groups = group_runs(cfgs, not a.process_per_run)
    if a.models:                                     # processes in the order of --models, Unsloth's before hf's
        names = a.models.split(",")
        groups.sort(key=lambda g: (names.index(g[0]["model"]), g[0]["backend"] != "unsloth"))
    for g in groups:
        if a.warmup and g[0].get("kind", "train") == "train":    # imports and compilation paid before the measured runs
            g.insert(0, dict(g[0], steps=a.warmup, variant="warmup", run_dir=g[0]["run_dir"] + ".warmup"))
        jobs.put(g)
    a.deadline = time.time() + (a.deadline or 10**9)
    gpus = [int(g) for g in a.gpus.split(",")] if a.gpus else [None]
    print(f"{len(runs)} runs over {len(gpus)} lane(s) -> {a.results}", flush=True)
    results, lock = [], threading.Lock()
    threads = [threading.Thread(target=_lane, args=(g, jobs, a, results, lock, len(gpus))) for g in gpus]
    for t in threads: t.start()
    for t in threads: t.join()
    ok = sum(r.get("status") == "ok" for r in results)
    print(f"{ok} of {len(results)} runs ok", flush=True)


if __name__ == "__main__":
    main()
