"""The learnability benchmark's tools (benchmarks/learnability.py): its command line parses, its data sets are what
they claim; and, as slow tests, the two proofs that images reach the model: a tiny model memorises four samples that
only the image tells apart, and reads unseen scans above the majority rate."""
import importlib.util, subprocess, sys, time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("learnability", ROOT / "benchmarks" / "learnability.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def test_help():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "learnability.py"), "--help"], capture_output=True,
                       text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "--steps" in r.stdout and "--n-test" in r.stdout


def test_memorisation_set_and_baseline():
    from medvqa.synthetic import text_only_ceiling
    b = _bench()
    memo = b.memorisation_set()
    assert [r["answer_type"] for r in memo] == ["closed", "closed", "open", "open"]
    assert text_only_ceiling(memo) == 0.5                     # the question alone gets half
    assert memo[0]["images"][0] is memo[2]["images"][0] and memo[0]["images"][0].tobytes() != memo[1]["images"][0].tobytes()
    assert b.majority_baseline(memo) == 0.5
    assert b.majority_baseline([{"answer": "yes", "answer_type": "closed"}] * 3 + [{"answer": "No", "answer_type": "closed"}]) == 0.75
    assert b.majority_baseline([{"answer": "left", "answer_type": "open"}]) is None


@pytest.mark.slow
def test_memorise(tmp_path):
    t0 = time.time()
    r = _bench().memorise(out_dir=tmp_path)
    print(f"{time.time() - t0:.0f} s; loss {r['train']['first_loss']:.2f} -> {r['train']['final_loss']:.3f}")
    assert r["trained"]["exact_match"] == 1.0, (tmp_path / "eval" / "predictions.jsonl").read_text()
    assert r["trained"]["closed"]["accuracy"] == 1.0 and r["trained"]["open"]["exact_match"] == 1.0
    assert r["untrained"]["exact_match"] <= 0.5                # the text alone gets at most half
    assert r["train"]["steps"] == 300 and r["train"]["final_loss"] < 0.1, r["train"]["final_loss"]


@pytest.mark.slow
def test_generalise(tmp_path):
    g = _bench().generalise(out_dir=tmp_path)
    lo, hi = g["trained"]["ci"]["closed.accuracy"]
    assert g["majority_baseline"] == 0.5
    assert lo > g["majority_baseline"], ((tmp_path / "eval" / "predictions.jsonl").read_text()[:2000], lo)
