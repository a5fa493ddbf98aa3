#!/usr/bin/env python3
"""Learnability: does a tiny model learn to read the synthetic lesion scans through medvqa's normal API?

Trains a tiny Qwen-VL model (registry settings: full fine-tuning, `medvqa.train.train`, hf backend, CPU) on
`medvqa.synthetic` samples (by default the demo set's four questions on one finding: two closed, two open), scores it on held-out synthetic samples during training (a learning curve) and at the end
(`medvqa.evaluate.evaluate`), and puts the untrained model and the majority rate beside it.

Targets (issue "models that learn"): closed accuracy >= 0.90 and open exact match >= 0.80 on >= 256 held-out
samples, within 10 minutes on 2 cores.

    python benchmarks/learnability.py                              # tiny-qwen3vl, the registry's step count
    python benchmarks/learnability.py --model tiny-qwen2vl --steps 1500 --tag qwen2vl

Writes benchmarks/results/learnability[_TAG].json. Its tools (`learn`, and the two smaller proofs `memorise` and
`generalise` that tests/test_learnability.py runs as slow tests) live here, beside the benchmark that uses them.
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, tempfile, time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent


MEMO_ROWS = (("left", "Is there a lesion?", "yes"), ("normal", "Is there a lesion?", "no"),
             ("left", "Which side of the image is the lesion on?", "left"),
             ("right", "Which side of the image is the lesion on?", "right"))

def memorisation_set(size: int = 64, seed: int = 0) -> list[dict]:
    "Four samples on three synthetic scans in which each question has two answers told apart only by the image."
    import numpy as np
    from PIL import Image
    from medvqa.core import infer_answer_type
    from medvqa.synthetic import synthetic_scan
    rng = np.random.default_rng(seed)
    scans = {k: Image.fromarray(synthetic_scan(rng, size, lesion, side)[0])
             for k, lesion, side in (("normal", False, None), ("left", True, "left"), ("right", True, "right"))}
    return [{"id": f"memo-{i}", "images": [scans[s]], "question": q, "answer": a, "answer_type": infer_answer_type(q, a),
             "source": "synthetic", "split": "train", "explanation": ""} for i, (s, q, a) in enumerate(MEMO_ROWS)]


def majority_baseline(records) -> float | None:
    "Closed accuracy of always giving the most frequent closed answer of `records`."
    c = Counter(str(r["answer"]).strip().lower() for r in records if r.get("answer_type") == "closed")
    return c.most_common(1)[0][1] / sum(c.values()) if c else None


def _brief(m: dict) -> dict:
    return {"n": m["n"], "exact_match": m["exact_match"], "closed": m["closed"], "open": m["open"], "ci": m["ci"]}


def learn(model, train_records, test_records, out_dir, max_steps: int, curriculum: str = "mixed", seed: int = 0,
          learning_rate=None, batch_size=None, grad_accum=None, untrained: bool = True, max_new_tokens: int = 8,
          **train_kw) -> dict:
    "Train `model` (key or ModelSpec) on `train_records`, evaluate trained (and untrained) on `test_records`."
    from datasets import Dataset
    from medvqa.evaluate import evaluate
    from medvqa.synthetic import text_only_ceiling
    from medvqa.train import train
    out = Path(out_dir)
    test_ds = Dataset.from_list(list(test_records))
    s = train(model, data=list(train_records), curriculum=curriculum, output_dir=out / "trained", max_steps=max_steps,
              backend="hf", seed=seed, learning_rate=learning_rate, batch_size=batch_size, grad_accum=grad_accum,
              save_steps=10**9, **train_kw)
    res = {"train": s, "majority_baseline": majority_baseline(test_records),
           "text_only_ceiling": text_only_ceiling(test_records)}
    res["trained"] = _brief(evaluate(model, data=test_ds, adapter=out / "trained", output_dir=out / "eval",
                                     max_new_tokens=max_new_tokens, progress=False))
    if untrained:
        res["untrained"] = _brief(evaluate(model, data=test_ds, output_dir=out / "eval-untrained",
                                           max_new_tokens=max_new_tokens, progress=False))
    return res


def memorise(model="tiny-qwen3vl", out_dir=None, max_steps: int = 300, seed: int = 0) -> dict:
    "Train `model` (its registry settings) on `memorisation_set()`, evaluate on the same samples; `learn`'s result."
    recs = memorisation_set(seed=seed)
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="medvqa-memorise-"))
    return learn(model, recs, recs, out, max_steps=max_steps, curriculum="mixed", seed=seed,
                 batch_size=len(recs), grad_accum=1)


GENERALISE_QUESTION = "Is there a lesion?"

def generalise(model="tiny-qwen3vl", out_dir=None, max_steps: int = 350, n_train: int = 512, n_test: int = 128,
               seed: int = 0) -> dict:
    "Train `model` on `n_train` scans with one image-dependent yes/no question, score `n_test` unseen ones."
    from medvqa.synthetic import make_synthetic
    q = [GENERALISE_QUESTION]
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="medvqa-generalise-"))
    return learn(model, make_synthetic(n_train, seed=seed, split="train", questions=q),
                 make_synthetic(n_test, seed=seed, split="test", questions=q), out, max_steps=max_steps,
                 curriculum="closed_only", seed=seed, batch_size=16, grad_accum=1, untrained=False)



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-qwen3vl")
    ap.add_argument("--steps", type=int, default=None, help="default: the registry's")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the registry's")
    ap.add_argument("--lr", type=float, default=None, help="default: the registry's")
    ap.add_argument("--n-train", type=int, default=2048)
    ap.add_argument("--n-test", type=int, default=256)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--curriculum", default="mixed")
    ap.add_argument("--questions", default="demo", choices=["demo", "all"],
                    help="demo: the demo set's four questions (two closed, two open); all: every synthetic question text")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    a = ap.parse_args(argv)

    import torch
    from medvqa.models import get_spec
    from medvqa.synthetic import DEMO_QUESTIONS, make_synthetic

    spec = get_spec(a.model)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    qs = DEMO_QUESTIONS if a.questions == "demo" else None
    train_recs = make_synthetic(a.n_train, seed=a.seed, split="train", questions=qs)
    test_recs = make_synthetic(a.n_test, seed=a.seed, split="test", questions=qs)
    work = Path(tempfile.mkdtemp(prefix="medvqa-learnability-"))
    res = learn(a.model, train_recs, test_recs, work, max_steps=a.steps, learning_rate=a.lr, batch_size=a.batch_size,
                grad_accum=1 if a.batch_size else None, curriculum=a.curriculum, seed=a.seed,
                eval_data=test_recs, eval_every=a.eval_every)
    wall = time.time() - t0
    s, m = res["train"], res["trained"]
    out = {"benchmark": "learnability", "model": a.model,
           "device": f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores, {platform.machine()})",
           "how": "one process: make_synthetic train/test sets, benchmarks/learnability.py learn = medvqa.train.train (hf backend, "
                  "the registry's settings unless overridden, eval_every for the curve) then medvqa.evaluate.evaluate of the "
                  "trained and the untrained model (greedy, strict metrics, 95% bootstrap intervals); wall_s counts all of it",
           "config": {"method": s["method"], "steps": s["steps"], "learning_rate": s["learning_rate"], "batch_size": s["batch_size"],
                      "grad_accum": s["grad_accum"], "n_train": a.n_train, "n_test": a.n_test, "curriculum": a.curriculum,
                      "seed": a.seed, "questions": list(qs) if qs else "all",
                      "explanations": "half of the open questions (make_synthetic's default)"},
           "wall_s": round(wall, 1), "train_s": s["train_s"], "curve_s": s.get("curve_s"),
           "steady_s_per_step": round((s["train_s"] - (s["first_step_s"] or 0)) / max(1, s["steps"] - 1), 4),
           "closed_accuracy": m["closed"]["accuracy"], "closed_accuracy_ci": m["ci"].get("closed.accuracy"),
           "open_exact_match": m["open"]["exact_match"], "open_exact_match_ci": m["ci"].get("open.exact_match"),
           "exact_match": m["exact_match"], "majority_baseline": res["majority_baseline"],
           "text_only_ceiling": res["text_only_ceiling"],
           "untrained": {"closed_accuracy": res["untrained"]["closed"]["accuracy"], "closed_invalid": res["untrained"]["closed"]["invalid"],
                         "open_exact_match": res["untrained"]["open"]["exact_match"]},
           "curve": json.loads((work / "trained" / "curve.json").read_text()),
           "first_loss": s["first_loss"], "final_loss": s["final_loss"],
           "target": {"closed_accuracy": 0.90, "open_exact_match": 0.80, "n_test": 256, "wall_s": 600},
           "load_avg_1min": {"start": round(load0, 2), "end": round(os.getloadavg()[0], 2)}}
    out["target_met"] = {"closed_accuracy": bool(out["closed_accuracy"] is not None and out["closed_accuracy"] >= 0.90),
                         "open_exact_match": bool(out["open_exact_match"] is not None and out["open_exact_match"] >= 0.80),
                         "wall_s": wall <= 600}
    dest = HERE / "results" / f"learnability{('_' + a.tag) if a.tag else ''}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("closed_accuracy", "open_exact_match", "majority_baseline", "untrained", "wall_s", "target_met")}))
    print(f"-> {dest}")
    shutil.rmtree(work, ignore_errors=True)
    return out


if __name__ == "__main__":
    main()
