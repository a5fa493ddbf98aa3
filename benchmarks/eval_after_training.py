#!/usr/bin/env python3
"""The run notebook's evaluation right after Unsloth training, in the same process (issue 27 item 1: >= 10 questions/s
for qwen8b after 4-bit training).

Unsloth compiles each decoder block of the model it trains (`torch.compile`, one region per block) and patches the
block's class, so the model that `Specialist` loads afterwards for evaluation carries the compiled blocks too. Its
first generation then compiles them again for generation's shapes. medvqa generates eagerly (`medvqa.evaluate.eager`);
`--compiled` measures the behaviour without it.

Each mode runs in its own process (what is compiled stays compiled within a process): train `MODEL` on the shipped
demo data with the registry's settings (random full-size weights, built once), load a `Specialist` from the run, then
time the first and a second `evaluate` of the demo test split. The two modes train apart (GPU training is not
bit-reproducible), so their predictions are compared within the compiled mode's process: its second (compiled)
evaluation against an eager one of the same model at the same batch.

    python benchmarks/eval_after_training.py                 # lent GPU: both modes, about 5 minutes
    python benchmarks/eval_after_training.py --model qwen3vl2b

Rows go to OUT/eval_after_training.jsonl (OUT defaults to /tmp/medvqa-eval-after) and are printed.
"""
from __future__ import annotations
import argparse, contextlib, json, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one(model: str, compiled: bool, work: Path) -> dict:
    "Train, then evaluate twice in this process; the row."
    import torch
    import medvqa.evaluate as ev
    from medvqa.builders import build_random_full
    from medvqa.models import get_spec
    from medvqa.train import train
    eager = ev.eager
    if compiled: ev.eager = contextlib.nullcontext                  # generation as torch leaves it: compiled blocks recompile
    path = work / f"random-{model}"
    if not (path / "config.json").exists(): build_random_full(get_spec(model), path, dtype="bfloat16", device="cuda")
    run = work / f"run-{'compiled' if compiled else 'eager'}"
    t = time.perf_counter(); train(model=model, model_path=str(path), output_dir=str(run), overwrite=True)
    row = {"kind": "eval_after_training", "model": model, "mode": "compiled" if compiled else "eager",
           "train_s": time.perf_counter() - t, "device_name": torch.cuda.get_device_name(0)}
    sp = ev.Specialist(model, adapter=str(run), model_path=str(path))
    row["weights"] = sp.weights()
    for i in (1, 2):
        out = run / f"eval-{i}"
        torch.cuda.synchronize(); t = time.perf_counter()
        m = ev.evaluate(sp, output_dir=str(out), progress=False, resume=True)
        torch.cuda.synchronize(); row[f"eval{i}_s"] = time.perf_counter() - t
        summ = json.loads((out / "eval_summary.json").read_text())
        row.update(samples=summ["samples"], batch=summ["batch_size"], closed_accuracy=m.get("closed_accuracy"))
        row[f"eval{i}_samples_per_s"] = summ["samples"] / row[f"eval{i}_s"]
        row[f"eval{i}_predictions"] = str(out / "predictions.jsonl")
    if compiled:                                                    # the same model and batch, generated eagerly
        ev.eager = eager
        out = run / "eval-eager"
        ev.evaluate(sp, output_dir=str(out), progress=False, resume=True, batch_size=row["batch"])
        outputs = lambda f: [json.loads(l)["output"] for l in Path(f).read_text().splitlines()]
        row["same_predictions_eager_vs_compiled"] = outputs(out / "predictions.jsonl") == outputs(row["eval2_predictions"])
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen8b")
    ap.add_argument("--mode", choices=("eager", "compiled"), help="one mode in this process (default: both, one process each)")
    ap.add_argument("--work", default="/tmp/medvqa-eval-after")
    a = ap.parse_args()
    import torch
    if not torch.cuda.is_available(): sys.exit("eval_after_training.py needs a CUDA GPU (Unsloth trains there)")
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    out = Path(os.environ.get("OUT") or work); out.mkdir(parents=True, exist_ok=True)
    if a.mode:
        print("ROW " + json.dumps(one(a.model, a.mode == "compiled", work)), flush=True)
        return
    rows = []
    for mode in ("eager", "compiled"):
        p = subprocess.run([sys.executable, __file__, "--model", a.model, "--mode", mode, "--work", str(work)],
                           capture_output=True, text=True)
        got = [json.loads(l[4:]) for l in p.stdout.splitlines() if l.startswith("ROW ")]
        rows += got or [{"kind": "eval_after_training", "model": a.model, "mode": mode, "status": f"failed (rc {p.returncode})",
                         "error": p.stderr[-1500:]}]
    with open(out / "eval_after_training.jsonl", "a") as f:
        for r in rows: f.write(json.dumps(r) + "\n"); print(json.dumps(r))


if __name__ == "__main__":
    main()
