"The GPU benchmark scripts' plans and launch commands (no training: the runs themselves need the lent GPUs)."
import importlib.util, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def test_gpu_train_plans():
    g = _load("gpu_train")
    runs = g.plan_runs(["recipe", "backends", "sweep", "e2e"])
    seed = [r for r in runs if r["recipe"] == "seed"]
    assert {(r["model"], r["batch"], r["grad_accum"]) for r in seed} == {("qwen3vl2b", 2, 4), ("qwen2vl2b-4bit", 2, 4)}
    assert all(r["backend"] == "unsloth" and r["optim"] == "adamw_8bit" for r in seed)      # the original work's literal optimiser
    assert {r["quant"] for r in runs if r["backend"] == "hf"} == {"bf16", "4bit"}
    assert sorted(r["batch"] for r in runs if r["model"] == "qwen8b" and r["quant"] == "bf16") == [8, 32, 64]
    assert [r["kind"] for r in runs if r.get("kind")] == ["e2e"]
    assert set(g.FIELDS) >= {"model", "backend", "quant", "batch", "grad_accum", "recipe", "steady_samples_per_s",
                             "steady_tokens_per_s", "mfu", "peak_gib", "first_step_s", "wall_s", "device", "status"}


def test_multigpu_launch():
    m = _load("multigpu")
    assert m._launch(1, 29600, tiny=True) == [sys.executable, "-m", "medvqa.cli"]     # one CPU process: plain python
    one = m._launch(1, 29601)                                                          # one GPU: torchrun too, as for several
    assert one[one.index("--nproc_per_node") + 1] == "1" and one[-2:] == ["-m", "medvqa.cli"]
    cmd = m._launch(4, 29604)
    assert cmd[cmd.index("--nproc_per_node") + 1] == "4" and cmd[-2:] == ["-m", "medvqa.cli"]
    assert m._env([0, 1])["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert {"--method", "full", "--fsdp"} <= set(m.FSDP_ARGS)                         # the fsdp8b plan: sharded, in full


def test_multigpu_help_names_fsdp():
    import subprocess
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "multigpu.py"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--fsdp" in r.stdout and "fsdp8b" in r.stdout, r.stderr[-2000:]


def test_gpu_train_groups():
    g = _load("gpu_train")
    cfgs = g.plan_runs(["recipe", "variants", "backends", "e2e"])
    groups = g.group_runs(cfgs)
    assert all(len({(c["model"], c["backend"]) for c in grp}) == 1 for grp in groups)      # one model and backend a process
    assert sum(map(len, groups)) == len(cfgs) and len(groups) == 5
    first = groups[0]                                     # plan order kept: the original work's recipe first, so it pays the compile
    assert [c.get("variant") or c["recipe"] for c in first] == ["seed", "default", "adamw-8bit", "baseline"]
    assert [bool(c.get("gradient_checkpointing")) for c in first] == [True, False, False, True]   # offloaded: the original work, the earlier default
    assert [c["kind"] for c in groups[-1]] == ["e2e"]                                    # e2e alone: its own process
    assert len(g.group_runs(cfgs, share=False)) == len(cfgs)


def test_gpu_train_packing_switch():
    import subprocess
    g = _load("gpu_train")
    assert {"packing", "padding_fraction", "attn_implementation"} <= set(g.FIELDS)   # printed and written with every row
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_train.py"), "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "--packing" in out and "padding_fraction" in out


def test_design_command_phases():
    d = _load("design_command")
    nb = {"cells": [{"cell_type": "markdown", "source": ["# train"]},
                    {"cell_type": "code", "source": ["model = 'qwen8b'"], "metadata": {"papermill": {"duration": 0.1}}},
                    {"cell_type": "code", "source": ["P = check_params({})"], "metadata": {"papermill": {"duration": 2.0}}},
                    {"cell_type": "code", "source": ["summary = train(**arguments(P, 'train'))"],
                     "metadata": {"papermill": {"duration": 100.0}}},
                    {"cell_type": "code", "source": ["fig = plot_loss([])"], "metadata": {"papermill": {"duration": 1.0}}},
                    {"cell_type": "code", "source": ["metrics = evaluate(sp, data=None)"],
                     "metadata": {"papermill": {"duration": 30.0}}},
                    {"cell_type": "code", "source": ["record_run(out)"], "metadata": {"papermill": {"duration": 2.0}}}]}
    train = {"load_s": 20.0, "first_step_s": 41.0, "train_s": 60.0, "steps": 20}     # steady steps of 1 s
    p = d.phases(nb, 140.0, train, {"wall_s": 12.0}, {"wall_s": 8.0})
    assert p == {"start": 7.0, "load": 20.0, "compile": 40.0, "training": 20.0, "save": 20.0, "eval_load": 10.0,
                 "evaluate": 20.0, "report": 3.0}
    assert abs(sum(p.values()) - 140.0) < 1e-6                       # the phases add up to the wall time


def test_varlen_check_needs_a_gpu():
    import subprocess, torch
    if torch.cuda.is_available(): return                                  # on a GPU it runs (minutes): not here
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "varlen_check.py")], capture_output=True, text=True)
    assert r.returncode == 1 and "needs a CUDA GPU" in r.stderr, r.stderr[-2000:]
