"""`medvqa.run`: the fan-out over models through papermill, end to end on the tiny model, with a failing run that
is recorded and shown while the others complete; the GPU-parallel path with a stand-in notebook."""
import filecmp, json, subprocess, sys
from pathlib import Path

from medvqa.core import package_dir
from medvqa.report import write_report
from medvqa.run import read_run, run_models
from medvqa.settings import train_notebook
from medvqa.testing import stub_notebook

ROOT = Path(__file__).resolve().parents[1]
TINY = {"max_steps": 2, "batch_size": 2, "grad_accum": 1, "max_eval_samples": 4, "max_new_tokens": 8, "n_gallery": 4}


def test_packaged_notebook_in_sync():
    "medvqa/templates/train.ipynb (installed use) is nbs/train.ipynb (copy it after editing the notebook)."
    assert train_notebook() == ROOT / "nbs" / "train.ipynb"
    assert filecmp.cmp(ROOT / "nbs" / "train.ipynb", package_dir() / "templates" / "train.ipynb", shallow=False), \
        "cp nbs/train.ipynb medvqa/templates/train.ipynb"


def test_run_models_tiny_and_failure(tmp_path):
    out = tmp_path / "RUN"
    recs = run_models(["tiny-qwen2vl", "no-such-model"], out, params=TINY, check=False, progress=False)
    assert [(r["label"], r["status"]) for r in recs] == [("tiny-qwen2vl", "ok"), ("no-such-model", "failed")]
    assert "unknown model 'no-such-model'" in recs[1]["error"] and recs[1]["traceback"]
    for lab in ("tiny-qwen2vl", "no-such-model"):
        assert (out / lab / "train.ipynb").exists() and (out / lab / "train.html").exists()
    assert (out / "tiny-qwen2vl" / "metrics.json").exists()
    h = write_report(out).read_text()
    assert "unknown model &#39;no-such-model&#39;" in h and 'href="tiny-qwen2vl/train.html"' in h
    rendered = (out / "tiny-qwen2vl" / "train.html").read_text()
    assert "check_params(" not in rendered and "record_run(" not in rendered, "bookkeeping code left out of the rendered notebook"
    assert "closed accuracy" in rendered
    assert "skip_exec" not in rendered, "nbdev's directive stays out of the rendered notebook"
    assert "Training Loss" not in rendered and "<progress" in rendered, "training's progress bar without its table of every step"
    assert json.loads((out / "tiny-qwen2vl" / "log_history.json").read_text()), "the losses stay in log_history.json"
    assert 'href="no-such-model/train.html"' in h and "1 ok" in h
    again = run_models(["tiny-qwen2vl"], out, params=TINY, progress=False)
    assert again[0].get("skipped") and again[0]["status"] == "ok"


def test_run_models_one_per_gpu(tmp_path):
    "gpus=[0, 1]: parallel worker processes, each run pinned with CUDA_VISIBLE_DEVICES (a stand-in notebook)."
    stub = stub_notebook(tmp_path / "stub.ipynb")
    nb = json.loads(stub.read_text())
    nb["cells"][1]["source"] += '\nimport os; (Path(output_dir) / "gpu.txt").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", ""))'
    stub.write_text(json.dumps(nb))
    recs = run_models(["a", "b", "bad"], tmp_path / "R", gpus=[0, 1], notebook=stub, progress=False)
    assert [(r["label"], r["status"]) for r in recs] == [("a", "ok"), ("b", "ok"), ("bad", "failed")]
    assert {(tmp_path / "R" / m / "gpu.txt").read_text() for m in ("a", "b")} <= {"0", "1"}
    assert {r["gpu"] for r in recs} <= {0, 1} and read_run(tmp_path / "R" / "bad")["status"] == "failed"


def test_nbdev_skips_the_run_notebook():
    "nbdev_test skips nbs/train.ipynb (its hidden frontmatter cell says skip_exec) without executing a cell."
    from nbdev.test import test_nb
    assert test_nb(ROOT / "nbs" / "train.ipynb") == (True, 0)


def test_no_plain_text_kernel_warning(tmp_path):
    "run_notebook's kernels talk over encrypted channels: the run's log has no ipykernel warning about plain-text TCP."
    stub = stub_notebook(tmp_path / "stub.ipynb")
    code = (f"from medvqa.run import run_notebook; r = run_notebook({{'model': 'a'}}, {str(tmp_path / 'a')!r}, notebook={str(stub)!r}, html=False); "
            "print(r['status'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]
    assert "without encryption" not in r.stderr and "IPKernelApp" not in r.stderr, r.stderr[-2000:]
