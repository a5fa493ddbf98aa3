#!/usr/bin/env python
"""GPU training benchmark (issue 13): medvqa's `train` on full-size random-weight models, steady state and end to end.

Runs, by plan (Unsloth patches transformers for a whole process, so each model and backend has a process of its own):
  recipe    the original work's literal recipe (Unsloth, batch 2 x 4) against medvqa's default (Unsloth, automatic batch: 8 x 1),
            same model, same effective batch of 8: qwen3vl2b (bf16) and qwen2vl2b-4bit (4-bit)
  backends  the hf backend at medvqa's default batch, bf16 and 4-bit (the Unsloth side is the recipe plan's default run)
  sweep     Unsloth at batch 16, 32, 64 (qwen3vl2b bf16), 32, 64 (qwen8b 4-bit; 8 is the e2e run) and 8, 32, 64
            (qwen8b bf16), accumulation 1
  workers0  medvqa's default with the DataLoader at 0 workers (the data pipeline back on the critical path);
            hf-workers0 the same for the hf backend
  profile   medvqa's default, Unsloth, qwen3vl2b, with the torch profiler over steps 6-8 (MEDVQA_PROFILE)
  variants  against medvqa's default (plan recipe: checkpointing off where the activations fit, fused AdamW for LoRA on a
            GPU): the original work's 8-bit AdamW (adamw-8bit) and medvqa's earlier default (baseline: Unsloth's offloaded
            checkpointing, 8-bit AdamW)
  e2e       qwen8b end to end: train (4-bit Unsloth, default batch), evaluate a few samples, merged export verified
  quant     what 4-bit saves (issue 27): qwen3vl2b and qwen2vl2b-4bit each in bf16 and in 4-bit (train's load_in_4bit), on
            both backends, at medvqa's default batch on these GPUs (8 x 1, pinned so that every row has the same), same
            data: four processes (one per model and backend), 8 runs. Each row's "quant" is what train built ("4bit" only
            when the summary counts Linear4bit layers) and carries "memory", the breakdown of MEDVQA_MEMORY_PROFILE below
            (step 2: the first with optimiser state, outside the steady window, so tracing it leaves the rates alone).
            At the end, one line per model: 4-bit peak / bf16 peak per backend (the run's peak and the traced step's).
            With --gpus 0,0 two of its processes share one GPU: peaks stay per process, rates do not (concurrent_runs 2).
            With --tiny only the hf backend's unquantised runs train (fp32 tiny models on the CPU); the 4-bit and
            Unsloth rows are written as "not run" with the reason
Runs of one model and backend share a process, after a short warm-up run (--warmup) that pays the imports and
compilation; steady rates also exclude the first two optimiser steps of each run; MFU = 6 x parameters x steady tokens/s
/ 790 TFLOP/s. With --gpus 0,1,2,3 the runs are spread over the GPUs, one run per GPU at a time (each run sees one GPU).
One JSON object per run is printed and appended to OUT/gpu_train.jsonl (OUT: --out, else $OUT, else benchmarks/results).

  python benchmarks/gpu_train.py --plans recipe,backends --steps 12
  python benchmarks/gpu_train.py --plans sweep,e2e --gpus 0,1,2,3
  python benchmarks/gpu_train.py --tiny --plans recipe --steps 4        # CPU smoke test (tiny models, hf backend)
  python benchmarks/gpu_train.py --plans backends --packing             # the hf runs with packed batches
  python benchmarks/gpu_train.py --plans backends --models qwen3vl2b --mix realistic [--packing]   # issue 26's mix
MEDVQA_MEMORY_PROFILE=N (set by plan quant; any plan's runs take it from the environment) breaks down the memory of
optimiser step N into the row's "memory": parameters by dtype and by part of the model, the 4-bit Linear4bit weights and
their quantisation state apart, buffers, gradients (counted just before step N's optimiser step), optimiser state (at
its end), torch.cuda.memory_stats()'s "allocated_bytes.all.peak" and "reserved_bytes.all.peak" (at step N's end and at
the end of training), the running peak after every step, and rest_gib = the run's peak minus all of those (activations,
temporaries, workspace). On a GPU step N's allocations are traced (torch.cuda.memory._record_memory_history, Python
stacks): the step's own peak, the allocation that reached it and what was live there by call site (the innermost
medvqa/transformers/unsloth/peft/trl/bitsandbytes frame); the 10 largest live blocks go to
OUT/gpu_memory_<model>_<backend>_<quant>_b<batch>.txt. The callback joins the trainer that medvqa's `train` builds
(this script wraps medvqa.train._trainer in its child process; medvqa is unchanged). Unset, nothing is added to the run.

  python benchmarks/gpu_train.py --plans quant --steps 8 --warmup 2 --gpus 0,0 --deadline 450   # issue 27, one GPU
  python benchmarks/gpu_train.py --tiny --plans quant --steps 3 --samples 32             # its CPU smoke test

With --packing the hf runs pack their batches (several samples a row, medvqa's `packing`; Unsloth's runs stay as they
are: it cannot pack), one row a batch whose samples medvqa's variable-length attention keeps apart (torch's flash
kernel); every row records "packing", the batches' "padding_fraction" (padding tokens / all tokens) and the language
model's "attn_implementation", so a packed and an unpacked call compare.
"""
from __future__ import annotations
import argparse, json, os, queue, subprocess, sys, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MEMORY_ENV = "MEDVQA_MEMORY_PROFILE"
GIB = 2**30
TINY = {"qwen2vl2b-4bit": "tiny-qwen2vl", "qwen3vl2b": "tiny-qwen3vl", "qwen8b": "tiny-qwen3vl"}
FIELDS = ("model", "backend", "quant", "batch", "grad_accum", "recipe", "steady_samples_per_s", "steady_tokens_per_s",
          "mfu", "peak_gib", "first_step_s", "wall_s", "device", "status", "packing", "padding_fraction",
          "attn_implementation")


def plan_runs(plans: list[str]) -> list[dict]:
    "The run configurations of the named plans (model, backend, quant, batch, grad_accum, recipe, env, kind)."
    R = []
    def add(model, backend, quant, batch, accum, recipe, **kw): R.append(dict(model=model, backend=backend, quant=quant,
                                                                             batch=batch, grad_accum=accum, recipe=recipe,
                                                                             plan=p, **kw))   # p: the plan being added
    for p in plans:
        if p == "recipe":
            for m, q in (("qwen3vl2b", "bf16"), ("qwen2vl2b-4bit", "4bit")):
                add(m, "unsloth", q, 2, 4, "seed", optim="adamw_8bit", gradient_checkpointing=True)   # Unsloth's offloaded kind
                add(m, "unsloth", q, None, None, "default")
        elif p == "backends":
            for m, q in (("qwen3vl2b", "bf16"), ("qwen2vl2b-4bit", "4bit")): add(m, "hf", q, None, None, "default")
        elif p == "sweep":
            for b in (16, 32, 64): add("qwen3vl2b", "unsloth", "bf16", b, 1, "sweep")
            for q in ("4bit", "bf16"):
                for b in ((32, 64) if q == "4bit" else (8, 32, 64)): add("qwen8b", "unsloth", q, b, 1, "sweep")  # 4-bit x 8: plan e2e
        elif p == "workers0":
            add("qwen3vl2b", "unsloth", "bf16", None, None, "default", env={"MEDVQA_DATALOADER_WORKERS": "0"}, variant="workers0")
        elif p == "hf-workers0":
            add("qwen3vl2b", "hf", "bf16", None, None, "default", env={"MEDVQA_DATALOADER_WORKERS": "0"}, variant="workers0")
        elif p == "profile":
            add("qwen3vl2b", "unsloth", "bf16", None, None, "default", env={"MEDVQA_PROFILE": "6-8"}, variant="profile")
        elif p == "profile-hf":
            add("qwen3vl2b", "hf", "bf16", None, None, "default", env={"MEDVQA_PROFILE": "6-8"}, variant="profile")
        elif p == "variants":       # candidate remedies for what the profile shows, against medvqa's default run in the same call
            add("qwen3vl2b", "unsloth", "bf16", None, None, "default", variant="adamw-8bit", optim="adamw_8bit")
            add("qwen3vl2b", "unsloth", "bf16", None, None, "default", variant="baseline", optim="adamw_8bit",  # the earlier default
                gradient_checkpointing=True)
        elif p == "e2e":
            add("qwen8b", "unsloth", "4bit", 8, 1, "sweep", kind="e2e")
        elif p == "quant":          # the same model in bf16 and in 4-bit, same batch and data, both backends
            for backend in ("unsloth", "hf"):
                for m in ("qwen3vl2b", "qwen2vl2b-4bit"):
                    for q in ("bf16", "4bit"): add(m, backend, q, 8, 1, "default", env={MEMORY_ENV: "2"})
        else: raise SystemExit(f"unknown plan {p!r}")
    return R


def group_runs(cfgs: list[dict], share: bool = True) -> list[list[dict]]:
    "Runs that share a child process: same model and backend (Unsloth patches the whole process), in plan order."
    if not share: return [[c] for c in cfgs]
    groups: dict = {}
    for c in cfgs: groups.setdefault((c["model"], c["backend"], c.get("kind", "train")), []).append(c)
    return list(groups.values())


_WORDS = ("the lesion shows a well defined margin with surrounding oedema and no calcification in the adjacent "
          "parenchyma while the contralateral side appears normal on this axial slice of the scan").split()

def records(n: int, size: int, mix: str = "synthetic"):
    """`n` training records: the synthetic demo set as it is (`mix="synthetic"`), or a realistic mix of lengths
    (`mix="realistic"`): as VQA-RAD, short answers to one image; every third record a PubMedVision-style explanation
    of 80-320 words; every fifth two or three images."""
    import random
    from medvqa.synthetic import make_synthetic
    recs = make_synthetic(n, seed=0, size=size, split="train")
    if mix == "synthetic": return recs
    rng = random.Random(0)
    for i, r in enumerate(recs):
        r["explanation"] = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(80, 320))) if i % 3 == 0 else ""
        if i % 5 == 0: r["images"] = r["images"] * rng.choice((2, 3))
    return recs


# ---- where the peak comes from (MEDVQA_MEMORY_PROFILE) ----
_LIBS = ("unsloth_compiled_cache/", "unsloth_zoo/", "unsloth/", "medvqa/", "transformers/", "peft/", "trl/",
         "bitsandbytes/")
MAX_TRACE = 1_000_000                # allocator events kept while one step is traced


def memory_step(value: str | None = None) -> int | None:
    """The optimiser step whose memory to break down, from `value` (default $MEDVQA_MEMORY_PROFILE, read as medvqa reads
    MEDVQA_PROFILE): '2' -> 2; unset or empty -> None (no breakdown, nothing added to the run)."""
    value = os.environ.get(MEMORY_ENV) if value is None else value
    if not value: return None
    if not str(value).isdigit() or int(value) < 1:
        raise ValueError(f"{MEMORY_ENV} must be one optimiser step (1-based), got {value!r}")
    return int(value)


def _add(acc: dict, t, seen: dict, key: str | None = None) -> int:
    """Add tensor `t`'s storage to acc[key, else its dtype] once per storage (views share one; `seen`: storages counted,
    (device, address) -> bytes); the bytes added."""
    import torch
    if not isinstance(t, torch.Tensor) or t.device.type == "meta": return 0
    st = t.untyped_storage()
    k = (t.device.type, t.device.index, st.data_ptr())
    if k in seen or st.nbytes() == 0: return 0
    seen[k] = st.nbytes()
    name = key or str(t.dtype).replace("torch.", "")
    acc[name] = acc.get(name, 0) + st.nbytes()
    return st.nbytes()


def _quant_tensors(qs, depth: int = 0) -> list:
    "The tensors of a bitsandbytes QuantState (absmax, code, offset, and those of its nested state2)."
    import torch
    out = []
    for v in (getattr(qs, "__dict__", {}) or {}).values():
        if isinstance(v, torch.Tensor): out.append(v)
        elif depth < 2 and hasattr(v, "absmax"): out += _quant_tensors(v, depth + 1)
    return out


def _part(name: str) -> str:
    return ("visual" if ".visual." in f".{name}." else
            "embed_and_head" if "embed_tokens" in name or "lm_head" in name else "language")


def _gib(x):
    return {k: _gib(v) for k, v in x.items()} if isinstance(x, dict) else round(x / GIB, 6)


def grad_bytes(model) -> dict:
    "Bytes held by the gradients of `model`'s parameters now, by dtype."
    acc, seen = {}, {}
    for p in model.parameters():
        if p.grad is not None: _add(acc, p.grad, seen)
    return acc


def optimizer_state_bytes(optimizer, seen: dict | None = None) -> dict:
    "Bytes held by `optimizer`'s state (moments, step counters, 8-bit quantisation state), by dtype."
    acc, seen = {}, {} if seen is None else seen
    opt = getattr(optimizer, "optimizer", optimizer)           # accelerate's AcceleratedOptimizer wraps torch's
    for st in getattr(opt, "state", {}).values():
        for v in (st.values() if isinstance(st, dict) else ()): _add(acc, v, seen)
    return acc


def cuda_stats() -> dict | None:
    "torch.cuda.memory_stats()'s current and peak allocated and peak reserved bytes; None without a GPU."
    import torch
    if not torch.cuda.is_available(): return None
    m = torch.cuda.memory_stats()
    return {k: m.get(k) for k in ("allocated_bytes.all.current", "allocated_bytes.all.peak", "reserved_bytes.all.peak")}


def memory_breakdown(model, optimizer=None, grads: dict | None = None) -> dict:
    """What `model` and `optimizer` hold now, GiB: parameters by dtype (bitsandbytes' packed 4-bit weights and their
    quantisation state apart), by part of the model and trainable; buffers; optimiser state; `grads` (`grad_bytes`,
    counted when the gradients exist: before the optimiser step); torch.cuda's counters (None on a CPU)."""
    seen, dt, q4, parts, buf, train_b, n4 = {}, {}, {}, {}, {}, 0, 0
    for name, p in model.named_parameters():
        if type(p).__name__ == "Params4bit":                # one per quantised layer (PEFT's wrapper shares its base's)
            n4 += 1
            n = _add(q4, p, seen, "weight") + sum(_add(q4, t, seen, "quant_state")
                                                  for t in _quant_tensors(getattr(p, "quant_state", None)))
        else: n = _add(dt, p, seen)
        parts[_part(name)] = parts.get(_part(name), 0) + n
        if p.requires_grad: train_b += n
    for b in model.buffers(): _add(buf, b, seen)
    opt = optimizer_state_bytes(optimizer, seen) if optimizer is not None else {}
    persistent = sum(seen.values()) + sum((grads or {}).values())
    return {"params_gib_by_dtype": _gib(dt), "params_gib_by_part": _gib(parts), "trainable_gib": _gib(train_b),
            "linear4bit_gib": _gib(q4), "linear4bit_layers": n4,
            "buffers_gib": _gib(sum(buf.values())),
            "grads_gib": _gib(sum(grads.values())) if grads is not None else None,
            "optimizer_state_gib": _gib(sum(opt.values())), "optimizer_state_gib_by_dtype": _gib(opt),
            "persistent_gib": _gib(persistent),          # all of the above: held across the step
            "cpu_gib": _gib(sum(n for k, n in seen.items() if k[0] == "cpu")),   # of the parameters, buffers, optimiser
            "cuda": cuda_stats()}


def _innermost_first(frames) -> list:
    frames = list(frames or ())
    return frames[::-1] if frames and frames[0].get("name") == "<module>" else frames    # torch lists the innermost first


def alloc_site(frames) -> str:
    "Where an allocation was made: its innermost frame in medvqa, transformers, Unsloth, PEFT, TRL or bitsandbytes."
    frames = _innermost_first(frames)
    for f in frames:
        fn = f.get("filename", "")
        for lib in _LIBS:
            i = fn.find("/" + lib)
            if i >= 0: return f"{fn[i + 1:]}:{f.get('line')} {f.get('name')}"
    if frames: return f"{frames[0].get('filename', '?').split('/')[-1]}:{frames[0].get('line')} {frames[0].get('name')}"
    return "(no Python frame: autograd's backward or C++)"


def trace_peak(trace: list, start: int, top: int = 10) -> tuple[dict, list]:
    """Replay one step's allocator trace (`torch.cuda.memory._snapshot()["device_traces"][device]`) from `start` bytes
    allocated: the step's peak, the allocation that reached it, and the blocks allocated within the step that were live
    there, summed by call site (`alloc_site`); also the `top` largest such blocks as text lines."""
    total = peak = start; at = -1
    for i, e in enumerate(trace):           # allocated_bytes falls at free_requested (as torch.cuda's counter does)
        a = e.get("action")
        if a == "alloc": total += e["size"]
        elif a == "free_requested": total -= e["size"]
        if total > peak: peak, at = total, i
    live = {}
    for e in trace[:at + 1]:
        if e.get("action") == "alloc": live[e["addr"]] = e
        elif e.get("action") == "free_requested": live.pop(e["addr"], None)
    sites = {}
    for e in live.values():
        s = sites.setdefault(alloc_site(e.get("frames")), [0, 0]); s[0] += e["size"]; s[1] += 1
    by_site = sorted(sites.items(), key=lambda kv: -kv[1][0])
    res = {"step_peak_gib": _gib(peak), "step_start_gib": _gib(start),
           "live_at_peak_gib": _gib(sum(e["size"] for e in live.values())), "live_blocks": len(live),
           "peak_event": f"{at + 1} of {len(trace)}",
           "peak_site": alloc_site(trace[at].get("frames")) if at >= 0 else None,
           "truncated": len(trace) >= MAX_TRACE,
           "sites": [[k, _gib(v[0]), v[1]] for k, v in by_site[:5]]}
    lines = [f"the {top} largest blocks allocated within the step and live at its peak (MiB, then up to 3 frames):"]
    for e in sorted(live.values(), key=lambda e: -e["size"])[:top]:
        fr = [f"{f.get('filename', '?').split('/')[-1]}:{f.get('line')} {f.get('name')}" for f in _innermost_first(e.get("frames"))
              if any("/" + lib in f.get("filename", "") for lib in _LIBS)][:3]
        lines.append(f"  {e['size'] / 2**20:9.1f}  {alloc_site(e.get('frames'))}  <- {' <- '.join(fr[1:]) or '-'}")
    lines.append("live at the peak by call site (GiB, blocks):")
    lines += [f"  {v[0] / GIB:8.3f} {v[1]:6d}  {k}" for k, v in by_site[:top]]
    return res, lines


def memory_callback(step: int):
    """A TrainerCallback that breaks down memory at optimiser step `step` into `.result` (and, on a GPU, `.lines`: the
    largest blocks live at that step's peak): gradients before its optimiser step, the rest at its end (`memory_breakdown`),
    on a GPU the step's allocations traced (`trace_peak`); at the end of training, the run's peak and the rest of it."""
    import torch
    from transformers import TrainerCallback
    cuda = torch.cuda.is_available()
    class MemoryBreakdown(TrainerCallback):
        def __init__(self): self.result, self.lines, self.grads, self.start, self.begin, self.by_step = None, [], None, 0, None, []
        def on_train_begin(self, args, state, control, **kw):
            if cuda: self.begin = torch.cuda.memory_allocated()
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step + 1 != step or not cuda: return
            self.start = torch.cuda.memory_allocated()
            kw = dict(enabled="all", context="alloc", stacks="python", max_entries=MAX_TRACE)
            try: torch.cuda.memory._record_memory_history(**kw, clear_history=True)     # this step's events only
            except TypeError: torch.cuda.memory._record_memory_history(**kw)            # older torch: cleared when disabled
        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            if state.global_step + 1 == step: self.grads = grad_bytes(model)
        def on_step_end(self, args, state, control, model=None, optimizer=None, **kw):
            if cuda: self.by_step.append(round(torch.cuda.max_memory_allocated() / GIB, 3))
            if state.global_step != step: return
            t0 = time.perf_counter()
            trace = None
            if cuda:
                trace = torch.cuda.memory._snapshot()["device_traces"][torch.cuda.current_device()]
                torch.cuda.memory._record_memory_history(enabled=None)
            self.result = {"step": step, **memory_breakdown(model, optimizer, self.grads)}
            if self.grads is None: self.result["grads_note"] = "not counted: no pre-optimizer-step event reached this callback"
            if trace is not None:
                self.result["trace"], self.lines = trace_peak(trace, self.start)
                self.result["trace"]["step_rest_gib"] = round(self.result["trace"]["step_peak_gib"] - self.result["persistent_gib"], 6)
            self.result["breakdown_s"] = round(time.perf_counter() - t0, 2)
        def on_train_end(self, args, state, control, **kw):
            if self.result is None: self.result = {"step": step, "error": f"training ended before optimiser step {step}"}
            end = cuda_stats()
            self.result.update(allocated_at_train_begin_gib=_gib(self.begin) if self.begin is not None else None,
                               peak_gib_by_step=self.by_step or None, cuda_at_train_end=end)
            if end and "persistent_gib" in self.result:        # the run's peak less what is held across steps
                self.result["rest_gib"] = round(end["allocated_bytes.all.peak"] / GIB - self.result["persistent_gib"], 6)
            elif "persistent_gib" in self.result: self.result["rest_gib"] = None
    return MemoryBreakdown()


def quant_lines(rows: list[dict], target: float = 0.6) -> list[str]:
    "One line per model: 4-bit peak / unquantised peak per backend, the run's and (where traced) the memory step's."
    def peak(r, traced=False):
        return ((r.get("memory") or {}).get("trace") or {}).get("step_peak_gib") if traced else r.get("peak_gib")
    out = []
    for m in dict.fromkeys(r["model"] for r in rows if r.get("plan") == "quant"):
        parts = []
        for b in ("unsloth", "hf"):
            rs = [r for r in rows if r.get("plan") == "quant" and r["model"] == m and r.get("backend") == b
                  and r.get("variant") != "warmup"]
            q4 = next((r for r in rs if r.get("quant") == "4bit" and r.get("status") == "ok"), None)
            fp = next((r for r in rs if r.get("quant") not in ("4bit", None) and r.get("status") == "ok"), None)
            if not (q4 and fp):
                why = "; ".join(sorted({str(r.get("status")) for r in rs if r.get("status") != "ok"})) or "no rows"
                parts.append(f"{b}: no ratio ({why})"); continue
            ratio = q4["peak_gib"] / fp["peak_gib"]
            t4, tf = peak(q4, True), peak(fp, True)
            parts.append(f"{b}: {q4['peak_gib']:.2f} / {fp['peak_gib']:.2f} GiB = {ratio:.2f}x "
                         f"({'met' if ratio <= target else 'missed'}: <= {target}x)"
                         + (f", step {q4['memory']['step']}: {t4:.2f} / {tf:.2f} = {t4 / tf:.2f}x" if t4 and tf else ""))
        base = next((r["quant"] for r in rows if r.get("plan") == "quant" and r["model"] == m and r.get("status") == "ok"
                     and r.get("quant") != "4bit"), "bf16")
        out.append(f"quant {m}: 4-bit / {base} peak at the same batch: " + "; ".join(parts))
    return out


def memory_line(r: dict) -> str:
    "One row's breakdown in one line, GiB (on a GPU: the run's peak = what persists across steps + rest)."
    m, f = r.get("memory") or {}, lambda x: "-" if x is None else f"{x:.3f}"
    head = f"  {r['model']} {r['backend']} {r['quant']}:"
    if "persistent_gib" not in m: return f"{head} {m.get('error', 'no breakdown')}"
    t = m.get("trace") or {}
    return (f"{head} peak {f(r.get('peak_gib'))}: params " + ", ".join(f"{k} {f(v)}" for k, v in m["params_gib_by_dtype"].items())
            + "".join(f", 4-bit {k} {f(v)}" for k, v in m["linear4bit_gib"].items())
            + f"; grads {f(m['grads_gib'])}; optimiser {f(m['optimizer_state_gib'])}; rest {f(m.get('rest_gib'))}"
            + (f"; step {m['step']} peak {f(t.get('step_peak_gib'))} reached by {t.get('peak_site')}, "
               f"most live there: {t['sites'][0] if t.get('sites') else '-'}" if t else ""))


def run_one(cfg: dict) -> dict:
    "Child process: one training run (and, for kind e2e, evaluation and merged export); returns the benchmark row."
    t0 = time.time()
    if cfg["backend"] == "unsloth": import unsloth  # noqa: F401  (first, so that it patches transformers and trl)
    import torch
    from medvqa.builders import build_random_full, tiny_model_dir
    from medvqa.models import get_spec
    from medvqa.train import train
    has_cuda = torch.cuda.is_available()
    key = cfg["key"]
    spec = get_spec(key)
    model_dir = tiny_model_dir(spec) if cfg["tiny"] else build_random_full(spec, Path(cfg["work"]) / "models" / key, device="cuda")
    t_model = time.time() - t0
    run_dir = Path(cfg["run_dir"])
    saved_env = dict(os.environ)
    os.environ.update(cfg.get("env", {}))
    import medvqa.train as mt
    trainer_of, mem = mt._trainer, None
    if memory_step():                      # the breakdown's callback joins the trainer medvqa builds (this process only)
        mem = memory_callback(memory_step())
        def _with_memory(*args, **kw):
            t = trainer_of(*args, **kw); t.add_callback(mem); return t
        mt._trainer = _with_memory
    t_call = time.time()
    try: s = train(key, data=records(cfg["samples"], cfg["image_size"], cfg.get("mix", "synthetic")), curriculum="open_then_closed", output_dir=run_dir,
              max_steps=cfg["steps"], backend=cfg["backend"], batch_size=cfg["batch"], grad_accum=cfg["grad_accum"],
              model_path=str(model_dir), save_steps=10**6, load_in_4bit=cfg["quant"] == "4bit", seed=0, overwrite=True, method="lora",
              optim=cfg.get("optim"), gradient_checkpointing=cfg.get("gradient_checkpointing"),
              packing=bool(cfg.get("packing")), max_length=cfg.get("max_length"))
    finally:
        os.environ.clear(); os.environ.update(saved_env); mt._trainer = trainer_of
    row = {k: cfg.get(k) for k in ("model", "backend", "quant", "recipe", "plan")}
    row["train_call_s"] = round(time.time() - t_call, 2)       # train() from call to return, its teardown included
    row.update(gradient_checkpointing=s["gradient_checkpointing"],      # on Unsloth, its offloaded kind
               unsloth_gc=("unsloth" if s["gradient_checkpointing"] else False) if cfg["backend"] == "unsloth" else None)
    row.update(batch=s["batch_size"], grad_accum=s["grad_accum"], steady_samples_per_s=s["steady_samples_per_s"],
               steady_tokens_per_s=s["steady_tokens_per_s"], mfu=s["steady_mfu"], peak_gib=s["peak_memory_gib"],
               first_step_s=s["first_step_s"], wall_s=round(time.time() - t0, 2), device=s["device"], status="ok",
               samples_per_s=s["samples_per_s"], tokens_per_s=s["tokens_per_s"], e2e_samples_per_s=None,
               steps=s["steps"], effective_batch=s["effective_batch"], load_s=s["load_s"], train_s=s["train_s"],
               model_ready_s=round(t_model, 2), dataloader_workers=s["dataloader_workers"], loss=s["loss"],
               loader_stop_s=s.get("loader_stop_s"), first_loss=s["first_loss"], final_loss=s["final_loss"], loss_finite=s["loss_finite"], params=s["params"],
               linear4bit=s["linear4bit"], max_seq_len=s["max_seq_len"], image_size=cfg["image_size"], optimizer=s["optimizer"],
               variant=cfg.get("variant"), kind=cfg.get("kind", "train"), versions=s["versions"],
               packing=s.get("packing", False), padding_fraction=s.get("padding_fraction"), mix=cfg.get("mix", "synthetic"),
               attn_implementation=s.get("attn_implementation"),
               max_length=cfg.get("max_length"))
    row["e2e_samples_per_s"] = round(s["samples_seen"] / row["wall_s"], 4)
    from medvqa.models import _dtype                          # the dtype medvqa loads unquantised weights in
    trained = "4bit" if (s.get("linear4bit") or {}).get("total") else {"bfloat16": "bf16", "float32": "fp32"}.get(
        str(_dtype(None, has_cuda, spec.tiny)).replace("torch.", ""), str(_dtype(None, has_cuda, spec.tiny)))
    if trained != cfg["quant"]:          # what train built, never what was asked for
        row.update(quant=trained, quant_asked=cfg["quant"], status=f"quant mismatch: asked {cfg['quant']}, trained {trained}")
    if mem is not None:
        row["memory"] = mem.result
        if mem.lines and cfg.get("out"):
            f = Path(cfg["out"]) / f"gpu_memory_{row['model']}_{row['backend']}_{row['quant']}_b{row['batch']}.txt"
            t = row["memory"].get("trace", {})
            f.write_text(f"{row['model']} {row['backend']} {row['quant']}, batch {row['batch']} x {row['grad_accum']}, "
                         f"{row['device']}: the run's peak {row['peak_gib']} GiB; step {row['memory']['step']}'s peak "
                         f"{t.get('step_peak_gib')} GiB from {t.get('step_start_gib')} GiB at its start, reached at "
                         f"allocator event {t.get('peak_event')} by {t.get('peak_site')}\n" + "\n".join(mem.lines) + "\n")
            row["memory"]["file"] = f.name
    prof = run_dir / "profile" / "profile.json"
    if prof.exists():
        row["profile"] = json.loads(prof.read_text())
        if cfg.get("out"):                   # the op tables beside the results, named by run
            import shutil
            for t in ("gpu", "cpu"):
                f = prof.parent / f"ops_{t}.txt"
                if f.exists(): shutil.copy(f, Path(cfg["out"]) / f"gpu_profile_{cfg['model']}_{cfg['backend']}_b{row['batch']}_ops_{t}.txt")
    if cfg.get("kind") == "e2e":
        from medvqa.evaluate import evaluate
        from medvqa.train import export_merged
        from datasets import Dataset
        import gc; gc.collect()
        if has_cuda: torch.cuda.empty_cache()
        t1 = time.time()
        m = evaluate(key, data=Dataset.from_list(records(16, cfg["image_size"])), adapter=run_dir, split=None, output_dir=run_dir / "eval",
                     batch_size=8, max_new_tokens=8, model_path=str(model_dir), progress=False)
        t2 = time.time()
        gc.collect()
        if has_cuda: torch.cuda.empty_cache()
        info = export_merged(key, run_dir, Path(cfg["work"]) / "merged" / key, model_path=str(model_dir), overwrite=True)
        row.update(eval_samples=m["n"], eval_s=round(t2 - t1, 2), export_s=round(time.time() - t2, 2),
                   export=info, wall_s=round(time.time() - t0, 2))
        import shutil; shutil.rmtree(Path(cfg["work"]) / "merged" / key, ignore_errors=True)
    return row


def _failed(cfg, err):
    return {k: cfg.get(k) for k in ("model", "backend", "quant", "batch", "grad_accum", "recipe", "variant", "packing",
                                    "plan")} | {
        "status": "failed", "error": err[-1500:]}


def _run_group(group, env, lane_dir, seconds):
    "Run one group in a child process; yield each run's row as it finishes, then a row for each run it did not finish."
    t1, done, killed = time.time(), 0, threading.Event()
    err_path = lane_dir / "stderr.txt"
    with open(err_path, "w") as err:
        p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(group)],
                             stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=lane_dir)
        killer = threading.Timer(seconds, lambda: (killed.set(), p.kill())); killer.start()
        for line in p.stdout:                      # one RESULT line per finished run
            if line.startswith("RESULT "):
                yield json.loads(line[7:]) | {"process_s": round(time.time() - t1, 2)}
                t1, done = time.time(), done + 1
        p.wait(); killer.cancel()
    for c in group[done:]:
        row = _failed(c, err_path.read_text()[-3000:])
        if killed.is_set(): row["status"] = "not finished: stopped at --deadline or --timeout"
        yield row


def _lane(gpu, jobs: "queue.Queue", a, results, lock, n_lanes, lane=0):
    "Take groups of runs off the queue; each group runs in one child process, its rows written as they come."
    while True:
        try: group = jobs.get_nowait()
        except queue.Empty: return
        env = {**os.environ}
        lane_dir = Path(a.work) / f"lane{lane}"; lane_dir.mkdir(parents=True, exist_ok=True)    # one per lane: a GPU
                                                                               # named twice runs two processes on it
        if gpu is not None: env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        env["UNSLOTH_COMPILE_LOCATION"] = str(lane_dir / "unsloth_compiled_cache")
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        left = a.deadline - time.time()
        rows = (_run_group(group, env, lane_dir, min(left - 30, a.timeout * len(group))) if left >= 60 else
                (_failed(c, "") | {"status": "not run: the benchmark's --deadline came first"} for c in group))
        for row in rows: _record(row, gpu, a, results, lock, n_lanes)


def _record(row, gpu, a, results, lock, n_lanes):
    row.update(gpu=gpu, concurrent_runs=n_lanes)
    with lock:
        with open(a.results, "a") as f: f.write(json.dumps(row) + "\n")
        results.append(row)
        print(json.dumps({k: row.get(k) for k in FIELDS + ("variant", "gpu", "error")}), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plans", default="recipe,backends,sweep,e2e,profile,workers0,variants")
    ap.add_argument("--steps", type=int, default=12, help="optimiser steps per run (steady rate over all but the first 2)")
    ap.add_argument("--image-size", type=int, default=448)
    ap.add_argument("--samples", type=int, default=256, help="distinct samples (the stream cycles through them)")
    ap.add_argument("--gpus", default=None, help="comma-separated GPU ids to spread the runs over (default: one lane); an id "
                    "named twice runs two processes on that GPU at once (memory is per process; rows say concurrent_runs)")
    ap.add_argument("--models", default=None, help="only the plans' runs of these registry models (comma-separated), in this order")
    ap.add_argument("--tiny", action="store_true", help="the tiny models on CPU, hf backend (a smoke test)")
    ap.add_argument("--work", default="/tmp/medvqa-bench")
    ap.add_argument("--out", default=None)
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per run")
    ap.add_argument("--deadline", type=float, default=None, help="seconds from now after which no run starts or goes on")
    ap.add_argument("--process-per-run", action="store_true",
                    help="each run in its own process (default: the runs of one model and backend share one, in plan order)")
    ap.add_argument("--warmup", type=int, default=4, help="steps of an unmeasured first run in each process (0: none)")
    ap.add_argument("--packing", action="store_true",
                    help="pack each batch's samples into rows (medvqa's packing; hf backend): rows record padding_fraction")
    ap.add_argument("--mix", default="synthetic", choices=("synthetic", "realistic"),
                    help="the training records: the synthetic demo set, or a realistic mix of lengths (short answers, "
                         "long explanations, some samples with 2-3 images)")
    ap.add_argument("--max-length", type=int, default=None,
                    help="medvqa's max_length: tokens a sample may have (packed batches stay one row each)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:                              # child: the runs of one group, in order, in this process
        group = json.loads(a.one)
        teardown = None
        for i, cfg in enumerate(group):
            try: row = run_one(cfg)
            except Exception as e:
                import traceback; traceback.print_exc()
                row = _failed(cfg, f"{type(e).__name__}: {e}")
            row["process_run"] = i                 # 0: this run paid the process's imports and first compilation
            row["previous_teardown_s"] = teardown  # freeing the previous run of this process (garbage collection, cache)
            print("RESULT " + json.dumps(row), flush=True)
            t = time.time()
            import gc; gc.collect()
            try:
                import torch; torch.cuda.empty_cache()
            except Exception: pass
            teardown = round(time.time() - t, 2)
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(0)                            # skip interpreter teardown (DataLoader workers, compile pools): tens of seconds
    out = Path(a.out or os.environ.get("OUT") or ROOT / "benchmarks" / "results"); out.mkdir(parents=True, exist_ok=True)
    a.results = out / "gpu_train.jsonl"
    runs = plan_runs(a.plans.split(","))
    if a.models: runs = [r for r in runs if r["model"] in a.models.split(",")]
    jobs = queue.Queue()
    cfgs, not_run = [], []
    for i, r in enumerate(runs):
        key = TINY[r["model"]] if a.tiny else r["model"]
        if a.tiny and r["plan"] == "quant" and (r["backend"] == "unsloth" or r["quant"] == "4bit"):   # 4-bit vs 16-bit:
            not_run.append(_failed(r, "") | {"status": "not run: " + (                                # never faked
                "Unsloth needs a CUDA GPU" if r["backend"] == "unsloth" else "4-bit weights (bitsandbytes) need a CUDA GPU")
                + " (--tiny: the CPU, hf backend)", "error": None})
            continue
        if a.tiny: r.update(backend="hf", quant="fp32")
        tag = f"{i:02d}.{r['model']}.{r['backend']}.{r['quant']}.{r['recipe']}.{r['batch']}x{r['grad_accum']}.{r.get('variant') or ''}"
        if a.packing and r["backend"] == "hf": r["packing"] = True; tag += ".packed"
        cfgs.append(dict(r, key=key, tiny=a.tiny, steps=a.steps, image_size=a.image_size, samples=a.samples, work=a.work, out=str(out),
                         mix=a.mix, max_length=a.max_length,
                         run_dir=str(Path(a.work) / "runs" / tag)))
    groups = group_runs(cfgs, not a.process_per_run)
    if a.models:                                     # processes in the order of --models, Unsloth's before hf's
        names = a.models.split(",")
        groups.sort(key=lambda g: (names.index(g[0]["model"]), g[0]["backend"] != "unsloth"))
    for g in groups:
        if a.warmup and g[0].get("kind", "train") == "train":    # imports and compilation paid before the measured runs
            g.insert(0, dict(g[0], steps=a.warmup, variant="warmup", run_dir=g[0]["run_dir"] + ".warmup",
                             env={k: v for k, v in g[0].get("env", {}).items() if k != MEMORY_ENV}))
        jobs.put(g)
    a.deadline = time.time() + (a.deadline or 10**9)
    gpus = [int(g) for g in a.gpus.split(",")] if a.gpus else [None]
    print(f"{len(runs)} runs over {len(gpus)} lane(s) -> {a.results}", flush=True)
    results, lock = [], threading.Lock()
    for row in not_run: _record(row, None, a, results, lock, len(gpus))
    threads = [threading.Thread(target=_lane, args=(g, jobs, a, results, lock, len(gpus), i)) for i, g in enumerate(gpus)]
    for t in threads: t.start()
    for t in threads: t.join()
    ok = sum(r.get("status") == "ok" for r in results)
    print(f"{ok} of {len(results)} runs ok", flush=True)
    for r in results:
        if "memory" in r: print(memory_line(r), flush=True)
    for line in quant_lines(results): print(line, flush=True)


if __name__ == "__main__":
    main()
