#!/usr/bin/env python3
"""The design's command, timed by phase: `papermill nbs/train.ipynb OUT.ipynb -p model qwen8b` as a user runs it.

On a lent GPU, with full-size random weights (no weights can be downloaded there), built once by
`medvqa.builders.build_random_full` and handed to the run notebook through `MEDVQA_MODEL_PATH_<KEY>`, the way a
user points medvqa at a local copy. Every other parameter is the notebook's default (shipped demo data, the model's own
steps, the blind control on). The wall time is split by phase from what the run leaves behind: papermill's duration of
each cell, `train_summary.json` (model load, first optimiser step, training) and `eval_summary.json` /
`blind_eval_summary.json` (generation):

  start      papermill's own start (kernel launch) and the parameters and set-up cells
  load       loading the model for training (`load_s`)
  compile    the first optimiser step (`first_step_s`: Unsloth's compilation, CUDA kernels' first use) less a steady
             step's time
  training   the remaining steps (`train_s` less the above)
  save       the rest of the training cell: the adapter, the summaries, the model card
  eval_load  loading the model again for evaluation (the evaluation cell less its two generations)
  evaluate   generation and scoring of the evaluation split, and of the blind control
  report     the plots, metrics table, gallery and `run.json`

  python benchmarks/design_command.py --model qwen8b              # lent GPU; about 4-6 minutes
  python benchmarks/design_command.py --model tiny-qwen2vl        # CPU: the same phases on a tiny model

One JSON object (kind "design_command") is printed and appended to benchmarks/results/design_command.jsonl (and
$OUT/design_command.jsonl when OUT is set); extra `-p NAME VALUE` pairs go to papermill.
"""
from __future__ import annotations
import argparse, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cell_phase(source: str) -> str | None:
    "The phase of a run-notebook cell, by the call it makes (None: a markdown or empty cell)."
    s = source.strip()
    if not s: return None
    if "train(**arguments" in s: return "train_cell"
    if "evaluate(sp" in s: return "eval_cell"
    if "check_params" in s or s.startswith("model =") or "parameters" in s[:40]: return "start"
    return "report"


def phases(nb: dict, total_s: float, train: dict, ev: dict, blind: dict | None) -> dict:
    "Seconds by phase (see the module docstring) from an executed run notebook and the run's summaries."
    cells: dict[str, float] = {}
    for c in nb["cells"]:
        if c["cell_type"] != "code": continue
        ph = cell_phase("".join(c["source"]))
        d = (c.get("metadata", {}).get("papermill") or {}).get("duration")
        if ph and d is not None: cells[ph] = cells.get(ph, 0.0) + float(d)
    steady_step = (train["train_s"] - train["first_step_s"]) / max(1, train["steps"] - 1)
    gen = ev["wall_s"] + (blind["wall_s"] if blind else 0.0)
    out = {"start": total_s - sum(cells.values()) + cells.get("start", 0.0),
           "load": train["load_s"],
           "compile": max(0.0, train["first_step_s"] - steady_step),
           "training": train["train_s"] - max(0.0, train["first_step_s"] - steady_step),
           "save": cells.get("train_cell", 0.0) - train["load_s"] - train["train_s"],
           "eval_load": cells.get("eval_cell", 0.0) - gen,
           "evaluate": gen,
           "report": cells.get("report", 0.0)}
    return {k: round(v, 2) for k, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen8b")
    ap.add_argument("--model-dir", help="where the random full-size weights are built (cached)")
    ap.add_argument("--work", default=None, help="run folder parent (default: a temporary folder)")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help="more papermill parameters")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    a = ap.parse_args(argv)
    from medvqa.core import append_jsonl, library_versions
    from medvqa.models import get_spec
    spec = get_spec(a.model)
    env = dict(os.environ)
    build_s = 0.0
    if not spec.tiny:
        import torch
        from medvqa.builders import build_random_full
        path = a.model_dir or str(Path(tempfile.gettempdir()) / f"medvqa-random-{spec.key}")
        t = time.perf_counter(); build_random_full(spec, path, dtype="bfloat16", device="cuda"); build_s = time.perf_counter() - t
        torch.cuda.empty_cache()
        env[f"MEDVQA_MODEL_PATH_{spec.key.upper().replace('-', '_')}"] = path
    work = Path(a.work or tempfile.mkdtemp(prefix="medvqa-design-"))
    work.mkdir(parents=True, exist_ok=True)
    run_dir, nb_out = work / spec.key, work / f"{spec.key}.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(ROOT / "nbs" / "train.ipynb"), str(nb_out), "-p", "model", spec.key,
           "-p", "output_dir", str(run_dir)] + [x for kv in a.p for x in ("-p", *kv)]
    print(" ".join(cmd), flush=True)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    total = time.perf_counter() - t
    if proc.returncode: sys.exit(f"papermill failed (rc {proc.returncode}); the executed notebook is {nb_out}")
    rd = lambda n: json.loads((run_dir / n).read_text()) if (run_dir / n).exists() else None
    train, ev, blind = rd("train_summary.json"), rd("eval_summary.json"), rd("blind_eval_summary.json")
    nb = json.loads(nb_out.read_text())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    row = {"kind": "design_command", "model": spec.key, "command": " ".join(["papermill", "nbs/train.ipynb", "OUT.ipynb",
                                                                         "-p", "model", spec.key] + [x for kv in a.p for x in ("-p", *kv)]),
           "total_s": round(total, 2), "phases": phases(nb, total, train, ev, blind), "random_weights_build_s": round(build_s, 2),
           "backend": train["backend"], "load_in_4bit": train["load_in_4bit"], "steps": train["steps"],
           "steady_samples_per_s": train.get("steady_samples_per_s"), "peak_memory_gib": train["peak_memory_gib"],
           "eval_samples": ev["samples"], "eval_batch_size": ev["batch_size"], "eval_weights": ev.get("weights"),
           "eval_samples_per_s": ev["samples_per_s"], "blind_samples_per_s": blind["samples_per_s"] if blind else None,
           "device_name": train["device"], "commit": commit, "host": platform.node(), "versions": library_versions(),
           "note": "random full-size weights (MEDVQA_MODEL_PATH_*), shipped demo data, every other parameter the notebook's default"}
    print(json.dumps(row, indent=1), flush=True)
    for d in [a.results] + ([os.environ["OUT"]] if os.environ.get("OUT") else []):
        append_jsonl(Path(d) / "design_command.jsonl", [row])
    return row


if __name__ == "__main__":
    main()
