#!/usr/bin/env python3
"""The curriculum ablation on the synthetic set, through `medvqa ablate`: does open-ended, explanation-rich training
before closed (yes/no) training help closed accuracy?

One tiny model (registry settings: full fine-tuning), one synthetic set in which the open and the closed question
rest on the same visual finding (closed "Is there a lesion?", open "What is the finding?" answered lesion/normal
with a one-sentence explanation), the same held-out set (64 closed + 64 open), the same step budget, three seeds,
four curricula. Each run is scored every STEPS/8 steps (a learning curve) and at the end.

Two questions, asked fairly:
- equal total steps: which order ends best (every run has STEPS steps of 16 samples);
- a fixed budget of closed samples: closed_only after STEPS/2 steps (its curve) has seen as many closed samples as
  open_then_closed after STEPS (STEPS/2 open, then STEPS/2 closed): does the open stage before them help?
  (The two differ also in where they are in the learning-rate schedule; the note says so.)

    python benchmarks/ablation.py                      # 4 curricula x 3 seeds, 2 runs at a time on a CPU
    python benchmarks/ablation.py --steps 160 --seeds 0 --tag quick
    python benchmarks/ablation.py --gpus 0,0,0,1,1,1 --runs-only --out /tmp/abl   # on a GPU machine: several runs per GPU
    python benchmarks/ablation.py --collect --out /tmp/abl                        # then: the JSON and the report from the run folders

Writes benchmarks/results/ablation[_TAG].json and the HTML report of the runs (--out, index.html).
"""
from __future__ import annotations
import argparse, json, os, platform, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
CURRICULA = ("open_then_closed", "closed_only", "mixed", "closed_then_open")
QUESTIONS = ("Is there a lesion?", "What is the finding?")


def _at(curve, step):
    "The curve point at `step` (or the last one before it)."
    pts = [p for p in curve if p["step"] <= step]
    return pts[-1] if pts else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-qwen3vl")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--n-train", type=int, default=2048)
    ap.add_argument("--n-test", type=int, default=256)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--gpus", default=None, help="GPU ids, one run per id at a time (repeat an id for several runs per GPU)")
    ap.add_argument("--runs-only", action="store_true", help="train and evaluate the runs, write no JSON or report")
    ap.add_argument("--collect", action="store_true", help="no training: the JSON and report from the run folders in --out")
    ap.add_argument("--out", default="reports/ablation")
    ap.add_argument("--tag", default="")
    a = ap.parse_args(argv)

    import numpy as np
    from medvqa.run import ablate
    from medvqa.report import write_report
    from medvqa.synthetic import make_synthetic, write_records

    out = Path(a.out); data = out / "data"
    if not (data / "test.jsonl").exists():
        for split, n in (("train", a.n_train), ("test", a.n_test)):
            write_records(data, split, make_synthetic(n, seed=0, split=split, explain=1.0, questions=QUESTIONS))
    seeds = [int(s) for s in a.seeds.split(",")]
    every = max(1, a.steps // 10)
    if a.collect:
        meta = json.loads((out / "ablation_run.json").read_text()); wall = meta["wall_s"]
        recs = [{"label": d.name, "status": "ok" if (d / "metrics.json").exists() else "failed", "dir": str(d)}
                for d in sorted((out / "runs").iterdir()) if (d / "train_summary.json").exists() or (d / "params.json").exists()]
    else:
        t0 = time.time()
        gpus = [int(g) for g in a.gpus.split(",")] if a.gpus else None
        recs = ablate(a.model, CURRICULA, data=data, out=out / "runs", seeds=seeds, parallel=a.parallel, gpus=gpus,
                      params={"max_steps": a.steps, "eval_every": every, "max_new_tokens": 24, "n_gallery": 4})
        wall = time.time() - t0
        (out / "ablation_run.json").write_text(json.dumps({"wall_s": round(wall, 1), "gpus": a.gpus, "records": recs}, default=str))
        if a.runs_only:
            print(json.dumps({"wall_s": round(wall, 1), "ok": sum(r.get("status") == "ok" for r in recs), "runs": len(recs)})); return
    report = write_report(out / "runs")
    runs = []
    for r in recs:
        d = Path(r.get("dir") or r.get("params", {}).get("output_dir") or out / "runs" / r["label"])
        if r.get("status") != "ok": runs.append({"label": r["label"], "status": r.get("status"), "error": r.get("error")}); continue
        m = json.loads((d / "metrics.json").read_text()); s = json.loads((d / "train_summary.json").read_text())
        curve = json.loads((d / "curve.json").read_text())
        runs.append({"curriculum": s["curriculum"], "seed": s["seed"], "steps": s["steps"], "status": "ok",
                     "closed_accuracy": m["closed"]["accuracy"], "closed_accuracy_ci": m["ci"].get("closed.accuracy"),
                     "closed_invalid": m["closed"]["invalid"], "open_exact_match": m["open"]["exact_match"],
                     "open_exact_match_ci": m["ci"].get("open.exact_match"), "exact_match": m["exact_match"],
                     "stages": s["stages"], "train_s": s["train_s"], "device": s.get("device"), "curve": curve})
    ok = [r for r in runs if r.get("status") == "ok"]
    def stats(xs):
        xs = [x for x in xs if x is not None]
        return {"mean": float(np.mean(xs)), "min": float(min(xs)), "max": float(max(xs)), "n": len(xs)} if xs else None
    by = {c: {k: stats([r[k] for r in ok if r["curriculum"] == c]) for k in ("closed_accuracy", "open_exact_match", "exact_match")}
          for c in CURRICULA}
    half = a.steps // 2
    fixed = {"closed_only_at_half": stats([(_at(r["curve"], half) or {}).get("closed_accuracy") for r in ok if r["curriculum"] == "closed_only"]),
             "open_then_closed_at_end": stats([r["closed_accuracy"] for r in ok if r["curriculum"] == "open_then_closed"]),
             "closed_samples_each": half * 16}
    devices = sorted({r.get("device") for r in ok if r.get("device")})
    result = {"benchmark": "curriculum ablation", "model": a.model,
              "device": ", ".join(devices) or f"cpu ({os.cpu_count()} cores, {platform.machine()})",
              "how": "medvqa.run.ablate (papermill runs of nbs/train.ipynb, several at a time): same model, "
                     "data, step budget and held-out set per run; only the curriculum and the training seed differ; curve "
                     "points from train(eval_every=STEPS/8); end metrics from medvqa.evaluate (95% bootstrap CIs over test samples)",
              "config": {"steps": a.steps, "batch": 16, "seeds": seeds, "curricula": list(CURRICULA), "questions": list(QUESTIONS),
                         "n_train": a.n_train, "n_test": a.n_test, "explanations": "every open answer", "eval_every": every,
                         "dtype": "float32 (the tiny models' dtype on every device)",
                         "shares": "curriculum defaults (ordered: half the steps per stage)"},
              "wall_s": round(wall, 1), "runs": runs, "by_curriculum": by, "fixed_closed_budget": fixed, "report": str(report)}
    dest = HERE / "results" / f"ablation{('_' + a.tag) if a.tag else ''}.json"
    dest.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"by_curriculum": by, "fixed_closed_budget": fixed, "wall_s": result["wall_s"]}, indent=1))
    print(f"-> {dest}; report {report}")


if __name__ == "__main__":
    main()
