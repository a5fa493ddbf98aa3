#!/usr/bin/env python3
"""The tiny models' training recipe over seeds: one `medvqa.train.train` run as `make reports` makes it (shipped demo
data, mixed curriculum, full fine-tuning), with the recipe's knobs overridden, scored on the demo test set every 100
steps (the learning curve `train(eval_every=100)` writes).

When a tiny model gets past the answer prior varies from seed to seed, so a recipe is judged over several seeds.
On a GPU machine, many runs at once (float32, the tiny models' dtype everywhere):

    for s in 0 1 2; do CUDA_VISIBLE_DEVICES=$s python benchmarks/tiny_recipe.py --model tiny-qwen2vl --batch-size 32 \\
        --vision-depth 1 --steps 1000 --seed $s --out /tmp/recipe & done; wait
    python benchmarks/tiny_recipe.py --collect /tmp/recipe        # -> benchmarks/results/tiny_recipe.json

Knobs: --batch-size, --steps, --learning-rate, --schedule (transformers' lr_scheduler_type), --seed, --gain (the vision
merger's scale at build time), --vision-depth, --text-layers, --max-pixels (side), --curriculum, --data synthetic
(2,048 generated training samples instead of the demo set's 789).
"""
from __future__ import annotations
import argparse, copy, json, os, sys, tempfile, time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
KNOBS = ("model", "batch_size", "steps", "learning_rate", "schedule", "seed", "gain", "vision_depth", "text_layers", "vision_width",
         "max_pixels", "curriculum", "data", "frozen", "adam_beta2", "lr_decay")


def collect(folder, dest):
    rows = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]
    out = {"benchmark": "tiny recipe over seeds",
           "how": "benchmarks/tiny_recipe.py: medvqa.train.train (hf backend, full fine-tuning, float32) on the shipped demo "
                  "data (789 training samples, 4 questions) unless data says otherwise, mixed curriculum; closed accuracy and "
                  "open exact match of greedy answers on the 102-sample demo test set every 100 steps; up to 16 runs at once "
                  "on a lent 4 x H100 machine (each run on one GPU, one DataLoader worker, one CPU thread)",
           "runs": rows}
    Path(dest).write_text(json.dumps(out, indent=1) + "\n")
    for r in rows:
        print(r["tag"], [(p["step"], round(p["closed_accuracy"], 2)) for p in r["curve"]][-3:])
    print(f"-> {dest}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-qwen2vl")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--learning-rate", type=float, default=None)
    ap.add_argument("--schedule", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gain", type=float, default=None)
    ap.add_argument("--vision-depth", type=int, default=None)
    ap.add_argument("--text-layers", type=int, default=None)
    ap.add_argument("--vision-width", type=int, default=None, help="Qwen2-VL's vision embed_dim (4 heads)")
    ap.add_argument("--max-pixels", type=int, default=None, help="the side of the largest square image")
    ap.add_argument("--curriculum", default="mixed")
    ap.add_argument("--data", default="demo", choices=("demo", "synthetic"))
    ap.add_argument("--frozen", default=None, help="model parts kept as built, e.g. vision,merger ('none': train every part)")
    ap.add_argument("--adam-beta2", type=float, default=None, help="AdamW's second-moment decay")
    ap.add_argument("--lr-decay", type=float, default=None, help="with --schedule warmup_stable_decay: the share of steps decayed")
    ap.add_argument("--tag", default=None)
    ap.add_argument("--out", default="/tmp/tiny_recipe")
    ap.add_argument("--collect", default=None, help="merge the run files of this folder into the results JSON")
    a = ap.parse_args(argv)
    if a.collect: return collect(a.collect, HERE / "results" / "tiny_recipe.json")

    import torch
    import medvqa.builders as MB
    from medvqa.models import get_spec
    cfg = copy.deepcopy(MB.TINY_CONFIGS[a.model]); changed = False
    if a.vision_depth is not None: cfg["vision_config"]["depth"] = a.vision_depth; changed = True
    if a.text_layers is not None: cfg["text_config"]["num_hidden_layers"] = a.text_layers; changed = True
    if a.vision_width is not None: cfg["vision_config"].update(embed_dim=a.vision_width, num_heads=4); changed = True
    gain = MB.TINY_IMAGE_GAIN if a.gain is None else a.gain; changed |= a.gain is not None
    tag = a.tag or "-".join(f"{k}{getattr(a, k)}" for k in ("batch_size", "vision_depth", "gain", "schedule", "frozen", "adam_beta2", "lr_decay", "seed")
                            if getattr(a, k) is not None)
    spec = get_spec(a.model)
    model_path = None
    if changed:                                       # a variant architecture: built into a folder of its own
        model_path = Path(a.out) / "models" / f"{a.model}-{tag}"
        if not (model_path / "config.json").exists(): MB.save_random(spec, cfg, model_path, image_gain=gain)
    spec = replace(spec, **{k: v for k, v in dict(batch_size=a.batch_size, learning_rate=a.learning_rate,
                                                   lr_scheduler=a.schedule, adam_beta2=a.adam_beta2, lr_decay=a.lr_decay,
                                                   frozen=None if a.frozen is None else tuple(x for x in a.frozen.split(",") if x not in ("", "none")),
                                                   max_pixels=a.max_pixels ** 2 if a.max_pixels else None).items() if v is not None})
    from medvqa.train import train
    from medvqa.synthetic import make_synthetic
    data = make_synthetic(2048, seed=1, size=64, split="train") if a.data == "synthetic" else None
    work = Path(tempfile.mkdtemp()) / "run"
    t0 = time.time()
    s = train(spec, data=data, curriculum=a.curriculum, output_dir=work, max_steps=a.steps, backend="hf", seed=a.seed,
              save_steps=10**6, eval_every=100, model_path=None if model_path is None else str(model_path))
    row = {"tag": f"{a.model}-{tag}", **{k: getattr(a, k) for k in KNOBS},
           "recipe": {"batch_size": spec.batch_size, "learning_rate": spec.learning_rate, "lr_scheduler": spec.lr_scheduler,
                      "vision_depth": cfg["vision_config"]["depth"], "gain": gain,
                      "frozen": list(spec.frozen), "adam_beta2": spec.adam_beta2, "lr_decay": spec.lr_decay},
           "device": s["device"], "wall_s": round(time.time() - t0, 1), "train_s": s["train_s"], "output_dir": s["output_dir"],
           "curve": json.loads((work / "curve.json").read_text())}
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    (out / f"{row['tag']}.json").write_text(json.dumps(row) + "\n")
    print(json.dumps({k: row[k] for k in ("tag", "wall_s")} | {"last": row["curve"][-1]}))


if __name__ == "__main__":
    sys.exit(main())
