"Data-parallel training through an existing launcher: `torchrun` with two gloo processes on CPU, same command, same outputs."
import json, os, subprocess, sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_torchrun_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", "29517", "-m", "medvqa.cli",
                        "train", "--model", "tiny-qwen2vl", "--max-steps", "2", "--batch-size", "1", "--grad-accum", "2",
                        "--backend", "hf", "--method", "lora", "--save-steps", "1", "--output", str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((out / "train_summary.json").read_text())
    assert s["world_size"] == 2 and s["effective_batch"] == 1 * 2 * 2 and s["steps"] == 2
    assert (out / "adapter_model.safetensors").exists() and (out / "adapter_config.json").exists()
    log = json.loads((out / "log_history.json").read_text())
    assert [row["step"] for row in log] == [1, 2]


def _torchrun(args, port, env):
    return subprocess.run([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(port), "-m", "medvqa.cli", *args],
                          capture_output=True, text=True, env=env, timeout=600)


def test_sharded_evaluation_two_gloo_processes(tmp_path):
    "Two processes each generate a shard; the merged predictions equal a one-process evaluation, in order; a torn shard resumes."
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    common = ["evaluate", "--model", "tiny-qwen2vl", "--max-samples", "7", "--batch-size", "2", "--max-new-tokens", "2"]
    one = subprocess.run([sys.executable, "-m", "medvqa.cli", *common, "--output", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    r = _torchrun(common + ["--output", str(tmp_path / "two")], 29518, env)
    assert r.returncode == 0, r.stderr[-3000:]
    want = (tmp_path / "one" / "predictions.jsonl").read_text()
    assert (tmp_path / "two" / "predictions.jsonl").read_text() == want
    assert not list((tmp_path / "two").glob("predictions.part-*"))
    s = json.loads((tmp_path / "two" / "eval_summary.json").read_text())
    assert s["processes"] == 2 and s["generated"] == 7
    assert json.loads((tmp_path / "two" / "metrics.json").read_text()) == json.loads((tmp_path / "one" / "metrics.json").read_text())
    # an interrupted sharded run: two rows in predictions.jsonl, one in a shard file with a torn last line -> resume
    lines = want.splitlines(keepends=True)
    d = tmp_path / "resumed"; d.mkdir()
    (d / "predictions.jsonl").write_text("".join(lines[:2]))
    (d / "predictions.part-1.jsonl").write_text(lines[4] + '{"id": "x", "predi')
    r = _torchrun(common + ["--output", str(d), "--resume"], 29519, env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (d / "predictions.jsonl").read_text() == want
    assert json.loads((d / "eval_summary.json").read_text())["resumed"] == 3
