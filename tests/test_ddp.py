"Data-parallel training through an existing launcher: `torchrun` with two gloo processes on CPU, same command, same outputs."
import json, os, subprocess, sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_torchrun_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", "29517", "-m", "medvqa.cli",
                        "train", "--model", "tiny-qwen2vl", "--max-steps", "2", "--batch-size", "1", "--grad-accum", "2",
                        "--backend", "hf", "--save-steps", "1", "--output", str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((out / "train_summary.json").read_text())
    assert s["world_size"] == 2 and s["effective_batch"] == 1 * 2 * 2 and s["steps"] == 2
    assert (out / "adapter_model.safetensors").exists() and (out / "adapter_config.json").exists()
    log = json.loads((out / "log_history.json").read_text())
    assert [row["step"] for row in log] == [1, 2]
