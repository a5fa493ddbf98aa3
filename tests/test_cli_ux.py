"""The command line as a new user meets it, in a real process: data on stdout as JSON and nothing else, one-line
errors that say what to do (never a traceback for a known mistake), and refusals that keep a finished run."""
import csv, json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "medvqa.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=timeout)


def one_line_error(r, contains):
    "Exit status 2, nothing on stdout, and a single `medvqa: error:` line that contains `contains`."
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert r.stdout == "" and "Traceback" not in r.stderr, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("medvqa: error: ") and contains in last, last
    return last


def test_version_and_models_table():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip().startswith("medvqa ")
    r = cli("models")
    assert r.returncode == 0 and r.stdout.splitlines()[0].split()[:2] == ["model", "kind"] and "tiny-qwen2vl" in r.stdout
    assert "MEDVQA_MODEL_PATH_" in r.stdout
    assert set(json.loads(cli("models", "--json").stdout)) >= {"tiny-qwen2vl", "qwen3vl2b"}


def test_relative_path_that_does_not_exist(tmp_path):
    one_line_error(cli("data", "stats", "data/vqa-rad", cwd=tmp_path), "data/vqa-rad: no such file or folder")


def _csv_without_split(d: Path) -> Path:
    from PIL import Image
    d.mkdir(parents=True, exist_ok=True)
    Image.new("L", (64, 64), 90).save(d / "a.png")
    with open(d / "qa.csv", "w", newline="") as f:
        w = csv.writer(f); w.writerow(["pic", "question", "answer"])
        w.writerow(["a.png", "Is there a mass?", "yes"]); w.writerow(["a.png", "What organ?", "liver"])
    return d / "qa.csv"


def test_missing_split_and_column_options(tmp_path):
    data = _csv_without_split(tmp_path / "mine")
    one_line_error(cli("evaluate", "--model", "tiny-qwen2vl", "--data", data, "--output", tmp_path / "ev"),
                   "cannot tell which column holds the image; name it with --image-column")
    one_line_error(cli("evaluate", "--model", "tiny-qwen2vl", "--data", data, "--image-column", "pic", "--output", tmp_path / "ev"),
                   "no records in split test; splits in this data: train (2) (choose one with --split)")
    s = json.loads(cli("data", "stats", data, "--image-column", "pic").stdout)
    assert s["samples"] == 2 and s["closed"] == 1


def test_score_folder_and_ask_missing_image(tmp_path):
    one_line_error(cli("score", tmp_path), "a folder without predictions.jsonl")
    one_line_error(cli("ask", "--model", "tiny-qwen2vl", tmp_path / "scan.png", "Is there a mass?"), "scan.png: no such image file")
    r = cli("ask", "--model", "no-such-model", tmp_path / "scan.png", "q")
    assert r.returncode == 2 and "invalid choice: 'no-such-model'" in r.stderr and "Traceback" not in r.stderr


def test_train_prints_only_json_and_keeps_the_run(tmp_path):
    out = tmp_path / "run"
    r = cli("train", "--model", "tiny-qwen2vl", "--output", out, "--max-steps", "2", "--save-steps", "1",
            "--batch-size", "2", "--grad-accum", "1", "--backend", "hf", "--method", "lora")
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)                                   # stdout is the summary and nothing else
    assert s["steps"] == 2 and s["model"] == "tiny-qwen2vl"
    card = (out / "README.md").read_text()                    # the model card describes this run, not PEFT's template
    assert "# medvqa run: tiny-qwen2vl, open_then_closed" in card and "| steps | 2 of 2" in card and "[More Information Needed]" not in card
    assert "| trained on | " in card and " [train] · " in card and "| method | LoRA r 16, alpha 32 |" in card
    before = sorted(p.name for p in out.iterdir())
    one_line_error(cli("train", "--model", "tiny-qwen2vl", "--output", out, "--max-steps", "2"),
                   "already holds a finished training run: pass --resume (resume=True) to continue it, --overwrite")
    assert sorted(p.name for p in out.iterdir()) == before       # nothing deleted
    one_line_error(cli("train", "--model", "tiny-qwen3vl", "--output", out, "--resume"),
                   "trained for model 'tiny-qwen2vl', not 'tiny-qwen3vl': pass --model tiny-qwen2vl")
    one_line_error(cli("export", "--model", "tiny-qwen3vl", "--adapter", out, "--output", tmp_path / "merged"),
                   "trained for model 'tiny-qwen2vl', not 'tiny-qwen3vl': pass --model tiny-qwen2vl")
    assert not (tmp_path / "merged").exists()


def test_registry_model_without_weights_says_how_to_point_at_them(tmp_path):
    from PIL import Image
    Image.new("L", (64, 64), 90).save(tmp_path / "scan.png")
    last = one_line_error(cli("ask", "--model", "qwen3vl2b", tmp_path / "scan.png", "Is there a mass?"),
                          "no weights for 'qwen3vl2b'")
    assert "--model-path DIR" in last and "MEDVQA_MODEL_PATH_QWEN3VL2B=DIR" in last
