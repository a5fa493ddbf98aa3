#!/usr/bin/env python3
"""CPU training step with and without freed memory kept in the process (the setting `keep_freed_memory` of `medvqa.train.train`).

Each mode runs `medvqa.train.train` (hf backend, the registry's settings, the shipped demo data) for --steps steps in a
fresh process (glibc's malloc settings are per process); the modes alternate, --repeats times per model. Steady time
per step excludes the first step; system time and minor page faults are the process's own (getrusage) over train().

    python benchmarks/cpu_malloc.py --steps 21 --repeats 2

Writes benchmarks/results/cpu_malloc.json.
"""
from __future__ import annotations
import argparse, json, os, platform, subprocess, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = r'''
import json, os, resource, sys, tempfile
from pathlib import Path
from medvqa.train import train
r0 = resource.getrusage(resource.RUSAGE_SELF)
s = train(sys.argv[1], output_dir=Path(tempfile.mkdtemp()) / "r", max_steps=int(sys.argv[3]), backend="hf", save_steps=10**6,
          keep_freed_memory=sys.argv[2] == "kept")                     # default: glibc's own settings
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"model": sys.argv[1], "mode": sys.argv[2], "steps": s["steps"], "batch_size": s["batch_size"],
                  "steady_s_per_step": round((s["train_s"] - s["first_step_s"]) / (s["steps"] - 1), 4),
                  "sys_s": round(r1.ru_stime - r0.ru_stime, 2), "user_s": round(r1.ru_utime - r0.ru_utime, 2),
                  "minor_page_faults": r1.ru_minflt - r0.ru_minflt}))
'''


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny-qwen2vl,tiny-qwen3vl")
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args(argv)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    rows = []
    for key in a.models.split(","):
        for _ in range(a.repeats):
            for mode in ("default", "kept"):
                p = subprocess.run([sys.executable, "-c", CHILD, key, mode, str(a.steps)], capture_output=True, text=True, env=env)
                if p.returncode: raise SystemExit(p.stderr[-2000:])
                rows.append(json.loads(p.stdout.strip().splitlines()[-1])); print(json.dumps(rows[-1]), flush=True)
    out = {"benchmark": "cpu malloc", "device": f"cpu ({os.cpu_count()} cores, {platform.machine()})",
           "how": __doc__.split("\n\n")[1].replace("\n", " "), "rows": rows}
    (HERE / "results" / "cpu_malloc.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
