#!/usr/bin/env python3
"""Loading PubMedVision-layout sets of growing size: first load (every image checked) and second load (checks read from
`medvqa.core.cache_dir()`), each `medvqa.data.load_vqa` in a fresh process.

Each set is one JSON list `PubMedVision_InstructionTuning_VQA.json` (the release's layout) of --records records over
records/20 tiny PNGs (32x32, grey noise), so that images are shared as in the release; it is written to a temporary
folder (--root to keep it), with its own MEDVQA_CACHE there. Times are of the `load_vqa` call in the child; peak RSS is
the child's own `resource.getrusage` maximum (Python start and imports included).

    nice python benchmarks/data_scale.py --records 10000 100000 1000000

Prints, and writes benchmarks/results/data_scale.json (rows by `records`, merged with the rows already there) and
benchmarks/results/data_scale.png.
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "data_scale.json"
RELEASE = "PubMedVision_InstructionTuning_VQA.json"

CHILD = """
import json, resource, sys, time
t0 = time.time()
from medvqa.data import load_info, load_vqa
from medvqa.images import ImageChecks
t1 = time.time()
ds = load_vqa(sys.argv[1])
t2 = time.time()
print(json.dumps({"load_s": t2 - t1, "import_s": t1 - t0, "rows": len(ds), "skipped": load_info(ds)["skipped"],
                  "first_id": ds[0]["id"], "last_id": ds[len(ds) - 1]["id"],
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def make_set(root: Path, records: int, images: int, seed: int = 0) -> Path:
    "A PubMedVision-layout folder: `images` tiny PNGs under images/ and one JSON list of `records` records."
    import numpy as np
    from PIL import Image
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(images):
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8), "L").save(root / "images" / f"img{i:07d}.png")
    with open(root / RELEASE, "w", encoding="utf-8") as f:
        f.write("[\n")
        for r in range(records):
            rec = {"id": f"pmc-{r}", "image": [f"images/img{r % images:07d}.png"],
                   "conversations": [{"from": "human", "value": f"<image>\nWhat does scan {r} show?"},
                                     {"from": "gpt", "value": f"The scan shows finding {r % 97} in region {r % 13}."}]}
            f.write(("," if r else "") + json.dumps(rec) + "\n")
        f.write("]\n")
    return root


def load_once(folder: Path, cache: Path) -> dict:
    "One `load_vqa` of `folder` in a fresh process with MEDVQA_CACHE=`cache`."
    env = {**os.environ, "MEDVQA_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    p = subprocess.run([sys.executable, "-c", CHILD, str(folder)], env=env, capture_output=True, text=True)
    if p.returncode: raise SystemExit(f"load of {folder} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def figure(rows: list, path: Path):
    "First and second load time against records, log-log, with each point's peak RSS."
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt, pandas as pd, seaborn as sns
    df = pd.DataFrame([{"records": r["records"], "load": k.split("_")[0] + " load", "seconds": r[k]}
                       for r in rows for k in ("first_load_s", "second_load_s")])
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(df, x="records", y="seconds", hue="load", marker="o", ax=ax)
    ax.set(xscale="log", yscale="log", title=f"load_vqa, PubMedVision layout ({rows[0]['cores']} cores)")
    for r in rows: ax.annotate(f"{r['peak_rss_gib']:.2f} GiB", (r["records"], r["first_load_s"]), fontsize=8,
                               textcoords="offset points", xytext=(4, 4))
    fig.tight_layout(); fig.savefig(path, dpi=120); plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--per-image", type=int, default=20, help="records sharing one image")
    ap.add_argument("--root", help="where the sets are written (kept); default: a temporary folder, removed")
    a = ap.parse_args(argv)
    root = Path(a.root or tempfile.mkdtemp(prefix="medvqa-data-scale-"))
    old = json.loads(OUT.read_text())["rows"] if OUT.exists() else []
    rows = {r["records"]: r for r in old}
    try:
        for n in a.records:
            folder, cache = root / f"pmv-{n}", root / f"cache-{n}"
            shutil.rmtree(cache, ignore_errors=True)
            t = time.time(); make_set(folder, n, max(1, n // a.per_image)); made = time.time() - t
            time.sleep(2.5)                        # past medvqa.images.RACY_S: every file is settled before its check
            first, second = load_once(folder, cache), load_once(folder, cache)
            assert (first["rows"], first["first_id"], first["last_id"]) == (second["rows"], second["first_id"],
                                                                            second["last_id"]), (first, second)
            rows[n] = {"records": n, "images": max(1, n // a.per_image), "first_load_s": round(first["load_s"], 2),
                       "second_load_s": round(second["load_s"], 2),
                       "peak_rss_gib": round(max(first["peak_rss_gib"], second["peak_rss_gib"]), 3),
                       "cores": os.cpu_count(), "rows": first["rows"], "import_s": round(second["import_s"], 2),
                       "first_peak_rss_gib": round(first["peak_rss_gib"], 3),
                       "second_peak_rss_gib": round(second["peak_rss_gib"], 3), "make_set_s": round(made, 1),
                       "loadavg_1min": round(os.getloadavg()[0], 2), "when": time.strftime("%Y-%m-%d %H:%M")}
            print(json.dumps(rows[n]), flush=True)
    finally:
        if not a.root: shutil.rmtree(root, ignore_errors=True)
    out = {"machine": platform.machine(), "python": platform.python_version(), "rows": sorted(rows.values(),
                                                                                       key=lambda r: r["records"])}
    OUT.parent.mkdir(parents=True, exist_ok=True); OUT.write_text(json.dumps(out, indent=2) + "\n")
    figure(out["rows"], OUT.with_suffix(".png"))
    print(f"wrote {OUT} and {OUT.with_suffix('.png')}")


if __name__ == "__main__":
    main()
