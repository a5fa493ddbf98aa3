"""Training and evaluation on two "nodes" of this machine: two torchrun launchers (`--nnodes 2 --node-rank R
--nproc-per-node 1`, c10d rendezvous, gloo) against one process with the same global batch; the run folder (shared, as
on a cluster filesystem) written once, by global rank 0; a node killed mid-run, both relaunched with --resume; a run
folder that is not shared refused; evaluation sharded across the two nodes; launch/medvqa.sbatch run with SLURM's
variables and stand-ins for srun and scontrol."""
import json, os, subprocess, sys, time
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from medvqa.checkpoints import last_checkpoint
from medvqa.testing import free_port, kill_node, torchrun_nodes, wait_nodes

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
STEPS = 8
TRAIN = ["train", "--model", "tiny-qwen2vl", "--max-steps", str(STEPS), "--backend", "hf", "--method", "lora",
         "--save-steps", "2"]
PER_NODE = ["--batch-size", "1", "--grad-accum", "2"]     # 2 nodes x 1 process x 1 x 2 = a global batch of 4
ONE = ["--batch-size", "2", "--grad-accum", "2"]          # 1 process x 2 x 2 = 4
RTOL = 1e-4            # relative tolerance on losses and gradient norms (all-reduce sums in another order)
EVAL = ["evaluate", "--model", "tiny-qwen2vl", "--max-samples", "5", "--batch-size", "2", "--max-new-tokens", "2"]


def _one(args, timeout=600):
    r = subprocess.run([sys.executable, "-m", "medvqa.cli", *args], capture_output=True, text=True,
                       env={**os.environ, **ENV}, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]


def _nodes(args, logs, timeout=600, **kw):
    "Two nodes running `medvqa <args>`; their exit codes and logs."
    rcs = wait_nodes(torchrun_nodes(["-m", "medvqa.cli", *args], logs, env=ENV, **kw), timeout=timeout)
    return rcs, [(Path(logs) / f"node{r}.log").read_text() for r in (0, 1)]


def _close(a, b, key):
    return abs(a[key] - b[key]) <= RTOL * max(abs(a[key]), abs(b[key]), 1e-8)


def _same_log(got, want):
    "Two log_history.json lists: the same steps, losses and gradient norms within RTOL."
    assert [r["step"] for r in got] == [r["step"] for r in want] == list(range(1, STEPS + 1))
    bad = [(g["step"], g["loss"], w["loss"]) for g, w in zip(got, want) if not (_close(g, w, "loss") and _close(g, w, "grad_norm"))]
    assert not bad, f"steps differ beyond rtol {RTOL}: {bad}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "One process, and two nodes (node 1 with a tiny-model cache of its own, as on a machine of its own), same global batch."
    d = tmp_path_factory.mktemp("multinode")
    _one([*TRAIN, *ONE, "--output", str(d / "one")])
    rcs, logs = _nodes([*TRAIN, *PER_NODE, "--output", str(d / "two")], d / "logs-two",
                       node_env={1: {"MEDVQA_CACHE": str(d / "node1-cache")}})
    assert rcs == [0, 0], "\n".join(l[-3000:] for l in logs)
    return d, logs


def test_two_nodes_equal_one_process_and_write_once(runs):
    d, logs = runs
    one, two = d / "one", d / "two"
    _same_log(json.loads((two / "log_history.json").read_text()), json.loads((one / "log_history.json").read_text()))
    s1, s2 = (json.loads((p / "train_summary.json").read_text()) for p in (one, two))
    assert (s2["world_size"], s2["effective_batch"], s2["steps"]) == (2, 4, STEPS) and s1["effective_batch"] == 4
    assert abs(s2["final_loss"] - s1["final_loss"]) <= RTOL * abs(s1["final_loss"])
    w1, w2 = load_file(str(one / "adapter_model.safetensors")), load_file(str(two / "adapter_model.safetensors"))
    assert w1.keys() == w2.keys() and max(abs(w1[k] - w2[k]).max() for k in w1) < 1e-5
    # written once, by global rank 0: one node says it trained and wrote the folder; the other returned as rank 1
    assert sum("trained tiny-qwen2vl" in l for l in logs) == 1 and sum('"rank": 1' in l for l in logs) == 1
    assert not list(two.glob("checkpoint-*"))                   # dropped once finished, by the one writer
    assert (d / "node1-cache" / "models").is_dir()               # node 1 built its own tiny model: a per-node cache


def test_node_killed_mid_run_resumes_to_the_same_run(runs, tmp_path):
    d, _ = runs
    out = tmp_path / "run"
    nodes = torchrun_nodes(["-m", "medvqa.cli", *TRAIN, *PER_NODE, "--output", str(out)], tmp_path / "logs-a", env=ENV)
    t0 = time.time()
    while (ck := last_checkpoint(out)) is None and all(p.poll() is None for p in nodes) and time.time() - t0 < 300:
        time.sleep(0.1)
    kill_node(nodes[1])                                          # node 1's machine dies: launcher and worker
    rcs = wait_nodes(nodes, timeout=120)                         # node 0 fails on its own, or is torn down
    assert ck is not None and rcs[1] == -9 and rcs[0] != 0, (rcs, (tmp_path / "logs-a" / "node0.log").read_text()[-3000:])
    assert not (out / "train_summary.json").exists(), "the run finished before the kill: nothing was interrupted"
    killed_at = last_checkpoint(out).name
    rcs, logs = _nodes([*TRAIN, *PER_NODE, "--output", str(out), "--resume"], tmp_path / "logs-b")
    assert rcs == [0, 0], "\n".join(l[-3000:] for l in logs)
    s = json.loads((out / "train_summary.json").read_text())
    assert s["resumed_from"].endswith(killed_at) and s["steps"] == STEPS and s["world_size"] == 2
    _same_log(json.loads((out / "log_history.json").read_text()), json.loads((d / "two" / "log_history.json").read_text()))


def test_resume_refuses_a_folder_each_node_sees_differently(tmp_path):
    "--output relative to each node's own working folder: node 0 holds a checkpoint, node 1 sees none; both refuse."
    a, b = tmp_path / "a", tmp_path / "b"
    ck = a / "run" / "checkpoint-2"; ck.mkdir(parents=True); b.mkdir()      # what last_checkpoint takes for complete
    for f in ("optimizer.pt", "scheduler.pt", "adapter_model.safetensors"): (ck / f).write_text("x")
    (ck / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    rcs, logs = _nodes([*TRAIN, *PER_NODE, "--output", "run", "--resume"], tmp_path / "logs", timeout=300,
                       node_cwd={0: a, 1: b})
    assert rcs[0] != 0 and rcs[1] != 0
    assert all("disagree on the last complete checkpoint" in l for l in logs), logs[0][-3000:]
    assert "rank 0: checkpoint-2; rank 1: None" in logs[0] or "rank 0: None; rank 1: checkpoint-2" in logs[0]


def test_evaluation_sharded_across_two_nodes(runs):
    d, _ = runs
    _one([*EVAL, "--adapter", str(d / "two"), "--output", str(d / "eval-one")])
    rcs, logs = _nodes([*EVAL, "--adapter", str(d / "two"), "--output", str(d / "eval-two")], d / "logs-eval")
    assert rcs == [0, 0], "\n".join(l[-3000:] for l in logs)
    assert (d / "eval-two" / "predictions.jsonl").read_text() == (d / "eval-one" / "predictions.jsonl").read_text()
    assert not list((d / "eval-two").glob("predictions.part-*"))
    s = json.loads((d / "eval-two" / "eval_summary.json").read_text())
    assert s["processes"] == 2 and s["generated"] == 5
    m1, m2 = (json.loads((d / p / "metrics.json").read_text()) for p in ("eval-one", "eval-two"))
    assert m1 == m2


SRUN = """#!/bin/bash
# srun's stand-in: one task per node of the allocation (every node is this machine), its options dropped
while [[ $1 == -* ]]; do shift; done
pids=()
for ((i = 0; i < SLURM_NNODES; i++)); do SLURM_NODEID=$i SLURM_PROCID=$i SLURM_LOCALID=0 "$@" & pids+=($!); done
rc=0; for p in "${pids[@]}"; do wait "$p" || rc=$?; done; exit $rc
"""
SCONTROL = """#!/bin/bash
# scontrol's stand-in: `show hostnames LIST` prints one host per node (all this machine)
[[ "$1 $2" == "show hostnames" && -n "$3" ]] || { echo "scontrol stand-in: unexpected $*" >&2; exit 2; }
for ((i = 0; i < SLURM_NNODES; i++)); do echo 127.0.0.1; done
"""


def test_sbatch_template_reaches_train_on_every_node(tmp_path):
    "launch/medvqa.sbatch as SLURM runs it on a 2-node allocation: its command line parses and trains with world size 2."
    script = ROOT / "launch" / "medvqa.sbatch"
    lines = script.read_text().splitlines()
    first_command = next(i for i, l in enumerate(lines) if l.strip() and not l.startswith("#"))
    directives = [i for i, l in enumerate(lines) if l.startswith("#SBATCH")]
    assert directives and max(directives) < first_command      # sbatch reads #SBATCH lines only above the first command
    stubs = tmp_path / "bin"; stubs.mkdir()
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
        (stubs / name).write_text(text); (stubs / name).chmod(0o755)
    env = {**os.environ, **ENV, "PATH": f"{stubs}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "gpu[01-02]", "SLURM_JOB_ID": "4242", "SLURM_NODEID": "0",
           "SLURM_GPUS_ON_NODE": "1", "MEDVQA_PORT": str(free_port())}
    out = tmp_path / "run"
    r = subprocess.run(["bash", str(script), "--model", "tiny-qwen2vl", "--max-steps", "2", "--batch-size", "1",
                        "--grad-accum", "1", "--backend", "hf", "--output", str(out)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 nodes x 1 processes, rendezvous 127.0.0.1:" in r.stderr
    s = json.loads((out / "train_summary.json").read_text())
    assert (s["world_size"], s["effective_batch"], s["steps"]) == (2, 2, 2)
