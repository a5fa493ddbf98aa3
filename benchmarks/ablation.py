#!/usr/bin/env python3
"""Curriculum ablation on the synthetic set, on the CPU: the same tiny model, seed, step budget and evaluation set
under each curriculum; closed and open metrics with 95% bootstrap intervals (medvqa.metrics).

Each run is `medvqa.learnability.learn` (medvqa.train.train + medvqa.evaluate.evaluate) with
`learnable_spec("tiny-qwen3vl")`. The registry's tiny settings cannot learn these questions (see
nbs/11_learnability.ipynb), which is why this does not go through `medvqa ablate` (papermill, registry keys).

    python benchmarks/ablation.py --steps 120 --seeds 0            # about 2.5 minutes per run on 2 free cores

Writes benchmarks/results/ablation[_TAG].json (one entry per curriculum x seed, and the mean per curriculum).
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
CURRICULA = ("open_then_closed", "closed_only", "mixed", "closed_then_open")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-qwen3vl")
    ap.add_argument("--curricula", default=",".join(CURRICULA))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--n-train", type=int, default=1024)
    ap.add_argument("--n-test", type=int, default=128)
    ap.add_argument("--data-seed", type=int, default=0, help="the synthetic set is the same for every run")
    ap.add_argument("--tag", default="")
    a = ap.parse_args(argv)

    import numpy as np, torch
    from medvqa.learnability import learnable_spec, learn
    from medvqa.synthetic import make_synthetic

    spec = learnable_spec(a.model, learning_rate=a.lr)
    train_recs = make_synthetic(a.n_train, seed=a.data_seed, split="train", explain=0.0)
    test_recs = make_synthetic(a.n_test, seed=a.data_seed, split="test", explain=0.0)
    dest = HERE / "results" / f"ablation{('_' + a.tag) if a.tag else ''}.json"
    runs, t_all = [], time.time()
    for seed in [int(s) for s in a.seeds.split(",")]:
        for cur in a.curricula.split(","):
            work = Path(tempfile.mkdtemp(prefix=f"medvqa-ablation-{cur}-"))
            t0 = time.time()
            r = learn(spec, train_recs, test_recs, work, max_steps=a.steps, curriculum=cur, seed=seed,
                      batch_size=a.batch_size, grad_accum=1, untrained=False)
            m = r["trained"]
            runs.append({"curriculum": cur, "seed": seed, "wall_s": round(time.time() - t0, 1),
                         "stages": r["train"]["stages"], "final_loss": r["train"]["final_loss"],
                         "closed_accuracy": m["closed"]["accuracy"], "closed_accuracy_ci": m["ci"].get("closed.accuracy"),
                         "closed_invalid": m["closed"]["invalid"],
                         "open_exact_match": m["open"]["exact_match"], "open_exact_match_ci": m["ci"].get("open.exact_match"),
                         "open_recall": m["open"]["recall"], "open_recall_ci": m["ci"].get("open.recall"),
                         "exact_match": m["exact_match"], "exact_match_ci": m["ci"].get("exact_match")})
            print(json.dumps({k: runs[-1][k] for k in ("curriculum", "seed", "closed_accuracy", "open_exact_match", "wall_s")}), flush=True)
            shutil.rmtree(work, ignore_errors=True)
            summary = {}
            for c in dict.fromkeys(r["curriculum"] for r in runs):
                rs = [x for x in runs if x["curriculum"] == c]
                summary[c] = {k: {"mean": float(np.mean([x[k] for x in rs])), "min": float(min(x[k] for x in rs)),
                                  "max": float(max(x[k] for x in rs))} for k in ("closed_accuracy", "open_exact_match", "exact_match")}
                summary[c]["seeds"] = [x["seed"] for x in rs]
            out = {"benchmark": "curriculum ablation", "model": a.model, "device": f"cpu ({torch.get_num_threads()} threads, "
                   f"{os.cpu_count()} cores, {platform.machine()})",
                   "config": {"steps": a.steps, "learning_rate": a.lr, "batch_size": a.batch_size, "grad_accum": 1,
                              "n_train": a.n_train, "n_test": a.n_test, "data_seed": a.data_seed, "explanations": False,
                              "lora_targets": list(spec.target_modules), "shares": "curriculum defaults (medvqa.curriculum)"},
                   "how": "same model, data, step budget and test set per run; only the curriculum (and the training seed) "
                          "differ; CIs: 95% percentile bootstrap over test samples (medvqa.metrics.score)",
                   "wall_s": round(time.time() - t_all, 1), "runs": runs, "by_curriculum": summary,
                   "note": "2-core machine shared with other jobs while measured"}
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(json.dumps(out, indent=2) + "\n")
    print(f"-> {dest}")


if __name__ == "__main__":
    main()
