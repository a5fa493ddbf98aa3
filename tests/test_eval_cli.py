"""`medvqa score`, `medvqa evaluate` and `medvqa ask` end to end on the tiny model and the shipped demo data,
and a smoke run of benchmarks/eval_speed.py (so the benchmark cannot rot)."""
import importlib.util, json
from pathlib import Path

import pytest
from PIL import Image

from medvqa.cli import main
from medvqa.metrics import METRICS

ROOT = Path(__file__).resolve().parents[1]


def _rows():
    return [{"id": "1", "question": "Is there a mass?", "answer": "yes", "prediction": "Yes, there is a mass.", "source": "a"},
            {"id": "2", "question": "Which organ?", "answer": "left lung", "prediction": "lung", "source": "b"}]


def test_score_cli(tmp_path, capsys):
    p = tmp_path / "predictions.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    assert main(["score", str(p), "--n-boot", "100"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["n"] == 2 and m["closed"]["accuracy"] == 1.0 and m["open"]["recall"] == 0.5
    assert set(m["ci"]) == {k for k in METRICS if k.split(".")[-1] != "n"}
    assert set(m["by_source"]) == {"a", "b"}


def test_score_cli_errors(tmp_path, capsys):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(_rows()[0]) + "\n" + json.dumps({"question": "q", "answer": "a"}) + "\n")
    assert main(["score", str(p)]) == 2
    assert "bad.jsonl:2: missing field(s) prediction" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["score", str(tmp_path / "empty.jsonl")]) == 2
    assert "empty predictions file" in capsys.readouterr().err


def test_evaluate_cli_resume(tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["evaluate", "--model", "tiny-qwen2vl", "--output", str(out), "--max-samples", "5",
            "--batch-size", "2", "--max-new-tokens", "2"]
    assert main(args) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["n"] == 5 and json.loads((out / "metrics.json").read_text()) == m
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 5
    assert main(args) == 2                                   # an existing evaluation is never overwritten
    assert "pass resume=True (--resume)" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0                    # nothing left to do: same predictions, same metrics
    assert json.loads(capsys.readouterr().out) == m
    assert (out / "predictions.jsonl").read_text().splitlines() == lines


def test_ask_cli(tmp_path, capsys):
    img = tmp_path / "scan.png"
    Image.new("L", (80, 60), 128).save(img)
    assert main(["ask", "--model", "tiny-qwen2vl", str(img), "Is there a mass?"]) == 0
    assert isinstance(capsys.readouterr().out, str)
    assert main(["ask", "--model", "tiny-qwen2vl", "--adapter", str(tmp_path), str(img), "Is there a mass?"]) == 2
    assert "no adapter_config.json" in capsys.readouterr().err


def test_eval_speed_benchmark_runs(tmp_path):
    spec = importlib.util.spec_from_file_location("eval_speed", ROOT / "benchmarks" / "eval_speed.py")
    bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)
    res = bench.main(["--samples", "4", "--batch", "2", "--max-new-tokens", "2", "--image-size", "32",
                      "--results", str(tmp_path)])
    assert [r["mode"] for r in res] == ["batched", "sequential"]
    for r in res:
        assert {"kind", "mode", "model", "device", "batch", "samples", "samples_per_s", "wall_s"} <= set(r)
        assert r["kind"] == "eval" and r["samples"] == 4 and r["samples_per_s"] > 0
    assert len(list(tmp_path.glob("eval_cpu_tiny-qwen2vl_*.json"))) == 2
