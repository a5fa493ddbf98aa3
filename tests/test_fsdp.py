"""Sharded full fine-tuning (`--fsdp`: torch's FSDP2 through transformers' Trainer and accelerate) on two gloo processes
on the CPU against unsharded data-parallel training with the same global batch: the same losses, the same final weights
saved as one ordinary model folder that loads; a run killed after a sharded checkpoint resumes to the same run; the
combinations FSDP does not serve refused in words."""
import json, os, subprocess, sys, time
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from medvqa.checkpoints import last_checkpoint
from medvqa.testing import free_port, kill_node

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
STEPS = 4
TRAIN = ["train", "--model", "tiny-qwen2vl", "--max-steps", str(STEPS), "--backend", "hf", "--method", "full",
         "--batch-size", "1", "--grad-accum", "2", "--save-steps", "2"]     # 2 processes x 1 x 2: a global batch of 4
RTOL = 1e-4            # relative tolerance on losses and gradient norms (reduce-scatter sums in another order than DDP)
ATOL_WEIGHTS = 1e-5    # the final weights, after 4 AdamW steps at lr <= 1e-4


def _torchrun(args, log=None):
    "Two gloo processes running `medvqa <args>`, their output piped (or written to `log`, for a run killed midway)."
    return subprocess.Popen([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()),
                             "-m", "medvqa.cli", *args], env=ENV, stdout=log or subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _run(args, timeout=600):
    p = _torchrun(args)
    out, _ = p.communicate(timeout=timeout)
    assert p.returncode == 0, out[-4000:]
    return out


def _log(d):
    return json.loads((Path(d) / "log_history.json").read_text())


def _close(a, b):
    return abs(a - b) <= RTOL * max(abs(a), abs(b), 1e-8)


def _same_log(got, want):
    assert [r["step"] for r in got] == [r["step"] for r in want] == list(range(1, STEPS + 1))
    bad = [(g["step"], g["loss"], w["loss"], g["grad_norm"], w["grad_norm"]) for g, w in zip(got, want)
           if not (_close(g["loss"], w["loss"]) and _close(g["grad_norm"], w["grad_norm"]))]
    assert not bad, f"steps differ beyond rtol {RTOL}: {bad}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("fsdp")
    _run([*TRAIN, "--output", str(d / "ddp")])
    _run([*TRAIN, "--fsdp", "--output", str(d / "fsdp")])
    return d


def test_fsdp_equals_data_parallel(runs):
    ddp, fsdp = runs / "ddp", runs / "fsdp"
    _same_log(_log(fsdp), _log(ddp))
    s, r = (json.loads((p / "train_summary.json").read_text()) for p in (fsdp, ddp))
    assert (s["fsdp"], r["fsdp"], s["world_size"], s["effective_batch"], s["steps"]) == (True, False, 2, 4, STEPS)
    assert s["fsdp_units"] == ["Qwen2VLDecoderLayer", "Qwen2VLVisionBlock"] and r["fsdp_units"] is None
    assert s["trainable_params"] == r["trainable_params"] == s["params"]          # counted whole, not one shard
    assert len(s["peak_memory_gib_per_process"]) == 2 and all(m > 0 for m in s["peak_memory_gib_per_process"])
    assert s["peak_memory_gib"] == s["peak_memory_gib_per_process"][0]
    w1, w2 = load_file(str(ddp / "model.safetensors")), load_file(str(fsdp / "model.safetensors"))
    assert w1.keys() == w2.keys() and all(w1[k].shape == w2[k].shape for k in w1)   # whole tensors, not shards
    worst = max(float(abs(w1[k] - w2[k]).max()) for k in w1)
    assert worst < ATOL_WEIGHTS, worst
    assert not list(fsdp.glob("checkpoint-*"))                 # dropped once finished


def test_saved_folder_loads_and_evaluates(runs, tmp_path):
    "One ordinary model folder: transformers' own class name, loaded by medvqa's Specialist and evaluated by the CLI."
    import torch
    from medvqa.evaluate import Specialist
    from medvqa.models import load_model
    fsdp = runs / "fsdp"
    assert json.loads((fsdp / "config.json").read_text())["architectures"] == ["Qwen2VLForConditionalGeneration"]
    sp = Specialist("tiny-qwen2vl", adapter=fsdp)
    saved = load_file(str(runs / "ddp" / "model.safetensors"))
    base, _ = load_model("tiny-qwen2vl")
    moved = [n for n, p in sp.model.named_parameters() if not torch.equal(p, dict(base.named_parameters())[n])]
    assert len(moved) > 0.9 * len(list(base.parameters())) and len(saved) > 0
    r = subprocess.run([sys.executable, "-m", "medvqa.cli", "evaluate", "--model", "tiny-qwen2vl", "--adapter", str(fsdp),
                        "--max-samples", "3", "--max-new-tokens", "2", "--output", str(tmp_path / "eval")],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / "eval" / "eval_summary.json").read_text())["generated"] == 3


def test_killed_after_a_sharded_checkpoint_resumes_to_the_same_run(runs, tmp_path):
    out = tmp_path / "run"
    p = _torchrun([*TRAIN, "--fsdp", "--output", str(out)], log=open(tmp_path / "killed.log", "w"))
    t0 = time.time()
    while (ck := last_checkpoint(out)) is None and p.poll() is None and time.time() - t0 < 300: time.sleep(0.05)
    kill_node(p)                                                 # launcher and workers, SIGKILL
    assert ck is not None and (ck / "pytorch_model_fsdp_0" / ".metadata").exists() and (ck / "optimizer_0").is_dir()
    assert not (out / "train_summary.json").exists(), "the run finished before the kill: nothing was interrupted"
    killed_at = last_checkpoint(out).name
    _run([*TRAIN, "--fsdp", "--output", str(out), "--resume"])
    s = json.loads((out / "train_summary.json").read_text())
    assert s["resumed_from"].endswith(killed_at) and s["steps"] == STEPS and s["fsdp"]
    _same_log(_log(out), _log(runs / "fsdp"))
    w1, w2 = load_file(str(runs / "fsdp" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert max(float(abs(w1[k] - w2[k]).max()) for k in w1) < ATOL_WEIGHTS


def test_unsupported_combinations_refused(tmp_path):
    def fails(args, want, launcher="torchrun"):
        cmd = ([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port())]
               if launcher == "torchrun" else [sys.executable])
        r = subprocess.run([*cmd, "-m", "medvqa.cli", *TRAIN[:-6], "--max-steps", "1", "--fsdp", *args,
                            "--output", str(tmp_path / "x")], capture_output=True, text=True, env=ENV, timeout=600)
        assert r.returncode != 0 and want in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
        assert not (tmp_path / "x" / "train_summary.json").exists()
    fails(["--method", "lora"], "fsdp shards a full fine-tuning (--method full)")
    fails([], "launch it with torchrun --nproc_per_node N", launcher="python")
