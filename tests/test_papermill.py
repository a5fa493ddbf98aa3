"""The run notebook as users run it: `papermill nbs/train.ipynb out.ipynb -p model tiny-qwen2vl` (offline, CPU),
and bad parameters stopped by the first cell after the parameters with one message."""
import json, os, subprocess, sys
from pathlib import Path

from medvqa.report import write_report

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NB = ROOT / "nbs" / "train.ipynb"
TINY = {"max_steps": 2, "batch_size": 2, "grad_accum": 1, "max_eval_samples": 4, "max_new_tokens": 8, "n_gallery": 4}


def papermill(tmp: Path, **params) -> subprocess.CompletedProcess:
    args = [str(BIN / "papermill"), str(NB), str(tmp / "out.ipynb"), "--cwd", str(tmp)]
    for k, v in params.items(): args += ["-p", k, str(v)]
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}     # the notebook must go offline by itself
    return subprocess.run(args, capture_output=True, text=True, timeout=900, env=env)


def test_train_notebook_tiny(tmp_path):
    out = tmp_path / "run" / "tiny-qwen2vl"
    r = papermill(tmp_path, model="tiny-qwen2vl", output_dir=out, **TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["status"] == "ok"
    s = json.loads((out / "train_summary.json").read_text())
    assert s["steps"] == 2 and s["model"] == "tiny-qwen2vl" and s["stages"]
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == 4 and "ci" in m
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 4
    g = json.loads((out / "gallery.json").read_text())
    assert len(g) == 4 and all(x["image"].startswith("data:image/png;base64,") for x in g)
    assert (out / "loss.png").stat().st_size > 0 and (out / "model.safetensors").exists()     # tiny models: full fine-tuning
    assert s["method"] == "full" and s["trainable_params"] == s["params"]
    h = write_report(tmp_path / "run").read_text()
    assert "tiny-qwen2vl" in h and "1 ok" in h


def test_bad_parameters_fail_first(tmp_path):
    r = papermill(tmp_path, model="qwen99", max_steps="abc", train_data=tmp_path / "missing")
    assert r.returncode != 0
    nb = json.loads((tmp_path / "out.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    i = next(i for i, c in enumerate(code) if "injected-parameters" in c["metadata"].get("tags", []))
    errs = [(j, o) for j, c in enumerate(code) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert [j for j, _ in errs] == [i + 1], "the first cell after the parameters fails, and only it"
    e = errs[0][1]
    assert e["ename"] == "ConfigError"
    for part in ("bad parameters for train.ipynb", "unknown model 'qwen99' (known: ", "max_steps must be a positive integer, got 'abc'",
                 f"train_data '{tmp_path / 'missing'}': no such file or folder"):
        assert part in e["evalue"], e["evalue"]
