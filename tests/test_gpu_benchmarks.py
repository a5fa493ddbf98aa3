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


def test_gpu_train_quant_plan():
    g = _load("gpu_train")
    runs = g.plan_runs(["quant"])
    assert sorted((r["model"], r["backend"], r["quant"]) for r in runs) == sorted(
        (m, b, q) for m in ("qwen3vl2b", "qwen2vl2b-4bit") for b in ("unsloth", "hf") for q in ("bf16", "4bit"))
    assert {(r["batch"], r["grad_accum"]) for r in runs} == {(8, 1)}                   # the same batch for every row
    assert all(r["plan"] == "quant" and g.memory_step(r["env"][g.MEMORY_ENV]) == 2 for r in runs)
    groups = g.group_runs(runs)                                                         # a process per model and backend
    assert len(groups) == 4 and all({c["quant"] for c in grp} == {"bf16", "4bit"} for grp in groups)
    assert g.memory_step("") is None and g.memory_step("3") == 3
    for bad in ("0", "2-4", "on"):
        try: g.memory_step(bad)
        except ValueError as e: assert g.MEMORY_ENV in str(e)
        else: raise AssertionError(f"{bad!r} accepted")


def test_gpu_train_memory_breakdown_cpu():
    "The breakdown on a CPU: parameters, gradients and AdamW's state counted from the tensors; no CUDA numbers."
    import torch
    g = _load("gpu_train")
    gib = lambda n: round(n / 2**30, 6)
    model = torch.nn.Sequential(torch.nn.Linear(512, 256), torch.nn.Linear(256, 64, bias=False)).to(torch.bfloat16)
    model[1].weight.requires_grad_(False)
    model.register_buffer("scale", torch.ones(1024))                        # float32 buffer
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    model(torch.randn(4, 512, dtype=torch.bfloat16)).float().pow(2).sum().backward()
    grads = g.grad_bytes(model)
    opt.step()
    m = g.memory_breakdown(model, opt, grads)
    trainable, frozen = (512 * 256 + 256) * 2, 256 * 64 * 2                # bf16 bytes
    assert grads == {"bfloat16": trainable} and m["grads_gib"] == gib(trainable)
    assert m["params_gib_by_dtype"] == {"bfloat16": gib(trainable + frozen)} and m["trainable_gib"] == gib(trainable)
    assert m["buffers_gib"] == gib(1024 * 4)
    opt_bytes = sum(t.untyped_storage().nbytes() for st in opt.state.values() for t in st.values())
    assert opt_bytes >= 2 * trainable and m["optimizer_state_gib"] == gib(opt_bytes)        # exp_avg, exp_avg_sq, step
    assert m["linear4bit_gib"] == {} and m["linear4bit_layers"] == 0 and m["cuda"] is None and g.cuda_stats() is None
    assert m["persistent_gib"] == gib(2 * trainable + frozen + 1024 * 4 + opt_bytes)
    assert m["cpu_gib"] == gib(trainable + frozen + 1024 * 4 + opt_bytes)    # all but the gradients (counted apart)
    assert g.memory_breakdown(model)["optimizer_state_gib"] == 0 and g.memory_breakdown(model)["grads_gib"] is None


def test_gpu_train_memory_4bit_storage():
    "bitsandbytes' packed weights and their quantisation state are counted apart from the 16-bit parameters."
    import torch
    g = _load("gpu_train")
    Params4bit = type("Params4bit", (torch.nn.Parameter,), {})                # the names bitsandbytes uses
    Linear4bit = type("Linear4bit", (torch.nn.Module,), {})
    QuantState = type("QuantState", (), {})
    lin = Linear4bit(); torch.nn.Module.__init__(lin)
    lin.weight = Params4bit(torch.zeros(4096, 1, dtype=torch.uint8), requires_grad=False)
    qs, nested = QuantState(), QuantState()
    qs.absmax, qs.code, nested.absmax = torch.zeros(64, dtype=torch.uint8), torch.zeros(16), torch.zeros(2)
    qs.state2 = nested; lin.weight.quant_state = qs
    model = torch.nn.ModuleDict({"visual": torch.nn.Linear(4, 4), "layer": lin})
    m = g.memory_breakdown(model)
    assert m["linear4bit_layers"] == 1
    assert m["linear4bit_gib"] == {"weight": round(4096 / 2**30, 6), "quant_state": round((64 + 64 + 8) / 2**30, 6)}
    assert set(m["params_gib_by_dtype"]) == {"float32"} and m["grads_gib"] is None
    assert m["params_gib_by_part"] == {"visual": round(20 * 4 / 2**30, 6), "language": round((4096 + 136) / 2**30, 6)}


def test_gpu_train_trace_peak():
    "The step's peak and what was live there, replayed from an allocator trace."
    g = _load("gpu_train")
    M = 2**20
    fr = lambda f: [{"filename": "/x/torch/nn/functional.py", "line": 1, "name": "linear"},
                    {"filename": f"/site-packages/{f}", "line": 7, "name": "forward"}]
    trace = [{"action": "alloc", "addr": 1, "size": 100 * M, "frames": fr("transformers/models/m.py")},
             {"action": "alloc", "addr": 2, "size": 300 * M, "frames": fr("bitsandbytes/functional.py")},
             {"action": "free_requested", "addr": 2, "size": 300 * M},
             {"action": "free_completed", "addr": 2, "size": 300 * M},
             {"action": "alloc", "addr": 3, "size": 50 * M, "frames": []},
             {"action": "free_requested", "addr": 9, "size": 1000 * M}]         # a block from before the step
    res, lines = g.trace_peak(trace, start=2000 * M)
    assert res["step_peak_gib"] == round(2400 / 1024, 6) and res["peak_event"] == "2 of 6"
    assert res["live_at_peak_gib"] == round(400 / 1024, 6) and res["live_blocks"] == 2
    assert res["peak_site"] == "bitsandbytes/functional.py:7 forward"
    assert [s[0] for s in res["sites"]] == ["bitsandbytes/functional.py:7 forward", "transformers/models/m.py:7 forward"]
    assert "300.0  bitsandbytes/functional.py:7 forward" in lines[1]
    assert g.alloc_site([]).startswith("(no Python frame")
    outermost_first = [{"filename": "/b/gpu_train.py", "line": 1, "name": "<module>"},
                       {"filename": "/s/transformers/trainer.py", "line": 2, "name": "train"}] + fr("peft/tuners/lora/bnb.py")[::-1]
    assert g.alloc_site(outermost_first) == "peft/tuners/lora/bnb.py:7 forward"
    flat, _ = g.trace_peak([{"action": "free_requested", "addr": 9, "size": M}], start=5 * M)   # never above the start
    assert flat["step_peak_gib"] == round(5 / 1024, 6) and flat["peak_site"] is None and flat["live_blocks"] == 0


def test_gpu_train_quant_lines():
    g = _load("gpu_train")
    row = lambda b, q, peak, st="ok": dict(plan="quant", model="qwen2vl2b-4bit", backend=b, quant=q, peak_gib=peak, status=st)
    lines = g.quant_lines([row("unsloth", "bf16", 10.0), row("unsloth", "4bit", 5.0), row("hf", "bf16", 10.0),
                           row("hf", "4bit", None, "not run: 4-bit weights (bitsandbytes) need a CUDA GPU")])
    assert len(lines) == 1 and "unsloth: 5.00 / 10.00 GiB = 0.50x (met" in lines[0]
    assert "hf: no ratio (not run: 4-bit weights" in lines[0]


def test_eval_profile_needs_a_gpu():
    import subprocess, torch
    if torch.cuda.is_available(): return                                  # on a GPU it runs (minutes): not here
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_profile.py")], capture_output=True, text=True)
    assert r.returncode == 1 and "needs a CUDA GPU" in r.stderr, r.stderr[-2000:]
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_profile.py"), "--sections", "e2e,cudnnn"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown sections ['cudnnn']" in r.stderr, r.stderr[-2000:]   # a typo: named, before a GPU is sought


def test_eval_after_training_needs_a_gpu():
    import subprocess, torch
    if torch.cuda.is_available(): return                                  # on a GPU it trains qwen8b (minutes): not here
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_after_training.py")], capture_output=True, text=True)
    assert r.returncode == 1 and "needs a CUDA GPU" in r.stderr, r.stderr[-2000:]
