#!/usr/bin/env python
"""Several GPUs, measured (issue 14): data-parallel training, sharded evaluation, one model per GPU.

Plans (each a list of fresh processes, timed; one JSON object per run appended to OUT/multigpu.jsonl):
  train     `torchrun --nproc_per_node N -m medvqa.cli train` on N = 1, 2, 4 GPUs (--gpus-list), per-device batch 8 x 1,
            qwen3vl2b bf16 with --backends (hf, unsloth); steady tokens/s summed over the processes (train_summary.json)
  train8b   the 8B path: qwen8b 4-bit (its registry default), hf backend, DDP on 1 and the largest N
  eval      `medvqa evaluate` on 1 GPU against `torchrun --nproc_per_node N -m medvqa.cli evaluate` (sharded)
  run       `medvqa run --gpus 0` against `--gpus 0,1` (one model per GPU) for the four seed models, hf backend,
            a short step budget, then the report; wall time of the whole command
  fsdp8b    (--fsdp) qwen8b fine-tuned in full, bf16, sharded with FSDP2 (`medvqa train --method full --fsdp`) on each
            GPU count of --gpus-list from 2 up, per-device batch 1; peak GPU memory of every process
            (train_summary.json's peak_memory_gib_per_process) beside tokens/s
Models are random full-size builds (`medvqa.builders.build_random_full`), data a synthetic 448-px set.

  python benchmarks/multigpu.py --plans train,eval --gpus-list 1,2,4
  python benchmarks/multigpu.py --plans run --run-concurrent      # the 1- and 2-GPU runs side by side on GPUs 0 and 1,2
  python benchmarks/multigpu.py --tiny --plans train,eval,run --gpus-list 1,2   # CPU smoke test (gloo)
  python benchmarks/multigpu.py --fsdp --plans "" --gpus-list 2,4,8              # only Qwen3-VL-8B in full, sharded
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SEED_MODELS = ("qwen8b", "qwen3vl2b", "qwen2vl7b", "qwen2vl2b-4bit")
TINY = {"qwen8b": "tiny-qwen3vl", "qwen3vl2b": "tiny-qwen3vl", "qwen2vl7b": "tiny-qwen2vl", "qwen2vl2b-4bit": "tiny-qwen2vl"}
BIN = Path(sys.executable).parent


def _env(gpus: list[int] | None, extra: dict | None = None) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if gpus is not None: env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
    return env


def _launch(n: int, port: int, tiny: bool = False) -> list[str]:
    "The command prefix that starts `python -m medvqa.cli` in n processes: torchrun on GPUs, also for n == 1 (same launcher,\n    same environment); plain python for one CPU process."
    if n == 1 and tiny: return [sys.executable, "-m", "medvqa.cli"]
    torchrun = BIN / "torchrun"
    head = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    return head + ["--nproc_per_node", str(n), "--master_port", str(port), "-m", "medvqa.cli"]


def _run(cmd, env, log: Path, timeout: int) -> tuple[int, float, str]:
    t0 = time.time()
    with open(log, "w") as f:
        try: rc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, cwd=log.parent).returncode
        except subprocess.TimeoutExpired: rc = 124
    return rc, round(time.time() - t0, 2), log.read_text()[-2500:]


def models(keys, a) -> dict:
    "Registry key -> model folder (random full-size builds, in parallel over the GPUs; tiny builds on CPU)."
    from medvqa.builders import tiny_model_dir
    from medvqa.models import get_spec
    if a.tiny: return {k: str(tiny_model_dir(get_spec(TINY[k]))) for k in keys}
    dirs = {k: Path(a.work) / "models" / k for k in keys}
    procs = []
    for i, k in enumerate(keys):
        if (dirs[k] / ".complete").exists(): continue
        code = (f"from medvqa.builders import build_random_full; from medvqa.models import get_spec; "
                f"build_random_full(get_spec({k!r}), {str(dirs[k])!r}, device='cuda')")
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=_env([i % a.n_gpus])))
    for p in procs: p.wait()
    return {k: str(d) for k, d in dirs.items()}


def data_dir(a) -> str:
    from medvqa.synthetic import write_synthetic
    d = Path(a.work) / f"data{a.image_size}"
    if not (d / "test.jsonl").exists(): write_synthetic(d, 256, 256, seed=0, size=a.image_size)
    return str(d)


def emit(row: dict, a):
    with open(a.results, "a") as f: f.write(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k not in ("log_tail", "versions")}), flush=True)


FSDP_ARGS = ["--method", "full", "--fsdp", "--no-load-in-4bit", "--gradient-checkpointing"]   # the fsdp8b plan's


def plan_train(a, model: str, backends, gpus_list, quant: str, extra: list | None = None, kind: str = "train"):
    mdir = models([model], a)[model]; data = data_dir(a)
    for backend in backends:
        if a.tiny and backend == "unsloth": continue
        for n in gpus_list:
            key = TINY[model] if a.tiny else model
            out = Path(a.work) / "runs" / f"{kind}.{model}.{backend}.{n}gpu"
            out.mkdir(parents=True, exist_ok=True)
            cmd = _launch(n, 29600 + n, a.tiny) + ["train", "--model", key, "--model-path", mdir, "--data", data,
                                          "--batch-size", str(a.batch), "--grad-accum", "1", "--backend", backend,
                                          "--max-steps", str(a.steps), "--save-steps", "1000000", "--output", str(out)]
            cmd += list(extra or [])
            threads = "1" if a.tiny else str(a.threads)      # the same for every process count (torchrun would set 1 for n > 1)
            rc, wall, tail = _run(cmd, _env(None if a.tiny else list(range(n)), {"OMP_NUM_THREADS": threads}), out / "log.txt", a.timeout)
            row = {"kind": kind, "fsdp": "--fsdp" in (extra or []), "model": model, "backend": backend, "quant": quant, "gpus": n, "wall_s": wall,
                   "omp_threads": int(threads), "steps_requested": a.steps,
                   "command": " ".join(["torchrun", "--nproc_per_node", str(n)] if n > 1 or not a.tiny else ["python"]) + " -m medvqa.cli "
                   + " ".join(cmd[cmd.index("medvqa.cli") + 1:])}
            sp = out / "train_summary.json"
            if rc == 0 and sp.exists():
                s = json.loads(sp.read_text())
                row.update(status="ok", steady_tokens_per_s=s.get("steady_tokens_per_s"), steady_samples_per_s=s.get("steady_samples_per_s"),
                           tokens_per_s=s["tokens_per_s"], samples_per_s=s["samples_per_s"], world_size=s["world_size"],
                           per_device_batch=s["batch_size"], effective_batch=s["effective_batch"], steps=s["steps"],
                           first_step_s=s["first_step_s"], train_s=s["train_s"], peak_gib_rank0=s["peak_memory_gib"],
                           peak_gib_per_process=s.get("peak_memory_gib_per_process"), method=s.get("method"),
                           steady_mfu=s.get("steady_mfu"), loss=s.get("loss"), dataloader_workers=s.get("dataloader_workers"),
                           final_loss=s["final_loss"], device=s["device"], versions=s["versions"])
            else: row.update(status="failed", rc=rc, log_tail=tail)
            emit(row, a)


def plan_eval(a, gpus_list):
    model = "qwen3vl2b"; mdir = models([model], a)[model]; data = data_dir(a)
    for n in sorted({1, max(gpus_list)}):
        key = TINY[model] if a.tiny else model
        out = Path(a.work) / "runs" / f"eval.{model}.{n}gpu"
        if out.exists(): import shutil; shutil.rmtree(out)
        out.mkdir(parents=True)
        cmd = _launch(n, 29700 + n, a.tiny) + ["evaluate", "--model", key, "--model-path", mdir, "--data", data, "--split", "test",
                                      "--max-samples", str(a.eval_samples), "--batch-size", "16", "--max-new-tokens", "16",
                                      "--output", str(out)]
        rc, wall, tail = _run(cmd, _env(None if a.tiny else list(range(n)), {"OMP_NUM_THREADS": "1"} if a.tiny else None),
                              out / "log.txt", a.timeout)
        row = {"kind": "eval", "model": model, "gpus": n, "wall_s": wall}
        sp = out / "eval_summary.json"
        if rc == 0 and sp.exists():
            s = json.loads(sp.read_text())
            lines = (out / "predictions.jsonl").read_text().splitlines()
            row.update(status="ok", samples=s["samples"], processes=s.get("processes"), generate_s=round(s["wall_s"], 2),
                       samples_per_s=round(s["samples_per_s"], 3) if s["samples_per_s"] else None,
                       in_order=[json.loads(l)["id"] for l in lines] == [str(json.loads(l)["id"]) for l in
                                 (Path(data) / "test.jsonl").read_text().splitlines()[:a.eval_samples]],
                       device=s["device"])
        else: row.update(status="failed", rc=rc, log_tail=tail)
        emit(row, a)


def _one_run(a, gpus: list[int], mdirs: dict, data: str, rows: list):
    out = Path(a.work) / "runs" / f"run.{len(gpus)}gpu"
    if out.exists(): import shutil; shutil.rmtree(out)
    out.mkdir(parents=True)
    keys = [TINY[m] for m in SEED_MODELS] if a.tiny else list(SEED_MODELS)
    if a.tiny: keys = list(dict.fromkeys(keys))
    cmd = [sys.executable, "-m", "medvqa.cli", "run", "--models", ",".join(keys), "--output", str(out / "reports"),
           "-p", "backend=hf", "-p", f"max_steps={a.run_steps}", "-p", f"max_eval_samples={a.run_eval_samples}",
           "-p", f"train_data={data}", "-p", f"eval_data={data}", "-p", "eval_batch_size=16"]
    if not a.tiny: cmd += ["--gpus", ",".join(map(str, gpus))]
    extra = {} if a.tiny else {f"MEDVQA_MODEL_PATH_{k.upper().replace('-', '_')}": d for k, d in mdirs.items()}
    rc, wall, tail = _run(cmd, _env(None, extra), out / "log.txt", a.timeout)
    recs = [json.loads((p / "run.json").read_text()) for p in sorted((out / "reports").glob("*/")) if (p / "run.json").exists()]
    row = {"kind": "run", "gpus": len(gpus), "gpu_ids": gpus, "models": keys, "wall_s": wall, "status": "ok" if rc == 0 else "failed",
           "runs_ok": sum(r.get("status") == "ok" for r in recs), "per_model_wall_s": {r.get("label"): r.get("wall_s") for r in recs},
           "report": (out / "reports" / "index.html").exists(), "max_steps": a.run_steps, "eval_samples": a.run_eval_samples,
           "concurrent_with_other_run": a.run_concurrent,
           "command": "medvqa run " + " ".join(cmd[cmd.index("run") + 1:]).replace(str(out / "reports"), "OUT")}
    if rc != 0 or row["runs_ok"] < len(keys): row["log_tail"] = tail
    rows.append(row)


def plan_run(a):
    mdirs = models(SEED_MODELS, a); data = data_dir(a)
    sets = [[0], [1, 2]] if a.run_concurrent and a.n_gpus >= 3 else [[0], [0, 1]]
    rows = []
    if a.run_concurrent and a.n_gpus >= 3:
        ts = [threading.Thread(target=_one_run, args=(a, g, mdirs, data, rows)) for g in sets]
        for t in ts: t.start()
        for t in ts: t.join()
    else:
        for g in sets: _one_run(a, g, mdirs, data, rows)
    for r in sorted(rows, key=lambda r: r["gpus"]): emit(r, a)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plans", default="train,eval,run")
    ap.add_argument("--gpus-list", default="1,2,4")
    ap.add_argument("--backends", default="hf,unsloth")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8, help="per-device batch")
    ap.add_argument("--image-size", type=int, default=448)
    ap.add_argument("--eval-samples", type=int, default=256)
    ap.add_argument("--run-steps", type=int, default=5)
    ap.add_argument("--run-eval-samples", type=int, default=16)
    ap.add_argument("--run-concurrent", action="store_true", help="the 1- and 2-GPU runs side by side (GPU 0 | GPUs 1,2)")
    ap.add_argument("--threads", type=int, default=4, help="OMP_NUM_THREADS of every training process (GPU runs)")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--fsdp", action="store_true", help="add the fsdp8b plan: qwen8b in full, bf16, sharded with FSDP2 over "
                    "each GPU count >= 2 of --gpus-list, per-device batch 1 (see medvqa train --fsdp)")
    ap.add_argument("--work", default="/tmp/medvqa-multigpu")
    ap.add_argument("--out", default=None)
    ap.add_argument("--timeout", type=int, default=1200)
    a = ap.parse_args(argv)
    import torch
    a.n_gpus = torch.cuda.device_count()
    out = Path(a.out or os.environ.get("OUT") or ROOT / "benchmarks" / "results"); out.mkdir(parents=True, exist_ok=True)
    a.results = out / "multigpu.jsonl"
    gl = [int(g) for g in a.gpus_list.split(",") if a.tiny or int(g) <= a.n_gpus]
    print(f"{a.n_gpus} GPU(s); plans {a.plans}; GPU counts {gl} -> {a.results}", flush=True)
    plans = [p for p in a.plans.split(",") if p]
    plans += ["fsdp8b"] if a.fsdp and "fsdp8b" not in plans else []
    for p in plans:
        if p == "train": plan_train(a, "qwen3vl2b", a.backends.split(","), gl, "bf16")
        elif p == "train8b": plan_train(a, "qwen8b", ["hf"], sorted({1, max(gl)}), "4bit")
        elif p == "eval": plan_eval(a, gl)
        elif p == "run": plan_run(a)
        elif p == "fsdp8b":
            a.batch = 1
            plan_train(a, "qwen8b", ["hf"], [n for n in gl if n >= 2], "bf16", FSDP_ARGS, kind="fsdp8b")
        else: raise SystemExit(f"unknown plan {p!r}")


if __name__ == "__main__":
    main()
