#!/usr/bin/env python3
"""Where the evaluation of VQA-RAD-sized test sets spends its time (issue 27 item 1: profile before optimising).

The set-up of `eval_speed.py` (full-size random Qwen3-VL-2B in bf16, 451 synthetic 448-pixel questions, 32 tokens
forced per answer, model load excluded), on a lent GPU:

1. `medvqa.evaluate.evaluate` end to end at medvqa's default batch (`batch_size=None`: sized by free memory) with
   images prepared on one thread (`image_workers=1`) and on the default threads (`image_workers=None`: every core, up
   to 16, a batch ahead of generation), then at batch 256 and 128 on the default threads; one row each, in
   eval_speed.py's format, to OUT/eval_cuda_<model>_batched_<auto|b256|b128>[_w1].json (`_w1`: one thread);
2. one batch of 128 taken apart: reading the images from the data set, `to_images`, the processor (on the CPU), the
   same two on the default threads (`to_image_lists`, `chunked_processor`; their inputs compared with the plain ones),
   prefill alone (`max_new_tokens=1`), 32 tokens, the vision tower;
3. a cProfile of one evaluation of 128 with images on one thread (Python's view: a profile sees its own thread only)
   and a torch profile of one generation of 8 tokens (kernels);
4. transformers' static cache, which compiles the decode step: first call (compilation), then steady, and whether its
   greedy tokens equal the dynamic cache's;
5. the vision tower's attention grouped by image size (`medvqa.evaluate.grouped_vision`, evaluate's default) against
   transformers' loop of one sdpa call per image: the tower's output for 256 images compared bit for bit and timed,
   and the end-to-end evaluation at the default batch without grouping, its predictions compared with the default's
   (`--repeat N`: N runs of each, taking turns).

0. (first when asked: `--sections cudnn`) the end-to-end evaluation at the default batch as medvqa generates (sdpa's
   cuDNN kernels left out, `medvqa.evaluate.without_cudnn_attention`), twice, then with sdpa free to pick them, twice:
   what the first use of each costs in a process. (The H100 row in results/eval_profile_h100_cudnn.json was taken
   before the library left them out, by turning them off and on globally; the same comparison.)

Each end-to-end evaluation also records its timeline (when each batch's preparation and generation ran).

    python benchmarks/eval_profile.py                           # OUT defaults to /tmp/medvqa-eval-profile
    python benchmarks/eval_profile.py --sections e2e,grouped    # some sections only

Everything goes to OUT (eval_profile.json, cprofile_*.txt, torchprof_*.txt), written as it is measured, so a run cut
short keeps what it measured.
"""
from __future__ import annotations
import argparse, contextlib, cProfile, io, json, os, pstats, sys, threading, time, traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE)); sys.path.insert(0, str(HERE.parent))


SECTIONS = ("cudnn", "e2e", "cprofile", "parts", "varlen", "torchprof", "static", "grouped")


@contextlib.contextmanager
def timeline(into: list, t0: float):
    "Record (step, batch rows or thread, start s, end s) of evaluate's preparation and generation while inside."
    import torch
    import medvqa.evaluate as ev
    prep, gen = ev.prepare_rows, ev.generate_ids
    def p(*a, **k):
        s = time.perf_counter(); r = prep(*a, **k)
        into.append(("prepare", threading.current_thread().name, round(s - t0, 3), round(time.perf_counter() - t0, 3)))
        return r
    def g(*a, **k):
        s = time.perf_counter(); r = gen(*a, **k); torch.cuda.synchronize()
        into.append(("generate", len(r), round(s - t0, 3), round(time.perf_counter() - t0, 3)))
        return r
    ev.prepare_rows, ev.generate_ids = p, g
    try: yield into
    finally: ev.prepare_rows, ev.generate_ids = prep, gen


def main(model: str = "qwen3vl2b", samples: int = 451, size: int = 448, tokens: int = 32, sections=SECTIONS,
         repeat: int = 1):
    import torch
    import medvqa.evaluate as ev
    from eval_speed import eval_row, synthetic_data, load, run
    from medvqa.evaluate import to_images, to_image_lists, chunked_processor, default_image_workers
    from medvqa.chat import render_prompt
    if not torch.cuda.is_available(): sys.exit("eval_profile.py needs a CUDA GPU")
    out = Path(os.environ.get("OUT") or "/tmp/medvqa-eval-profile"); out.mkdir(parents=True, exist_ok=True)
    res: dict = {}
    save = lambda: (out / "eval_profile.json").write_text(json.dumps(res, indent=1, default=str))
    def T(): torch.cuda.synchronize(); return time.perf_counter()

    t = time.perf_counter(); sp = load(model, "cuda", None); res["load_s"] = time.perf_counter() - t
    m, p = sp.model, sp.processor
    res.update(attn=str(m.config._attn_implementation), image_processor=type(p.image_processor).__name__)
    ds = synthetic_data(samples, size)
    run(sp, ds.select(range(4)), 4, tokens, Path("/tmp/medvqa-ep-warmup"))
    for i, on in enumerate((False, False, True, True) if "cudnn" in sections else ()):   # 0. sdpa's cuDNN kernels
        leave_out = ev.without_cudnn_attention                        # medvqa's default twice, then sdpa free to pick
        if on: ev.without_cudnn_attention = contextlib.nullcontext    # them twice: each one's first use in a process
        try:
            with timeline([], time.perf_counter()) as tl:
                wall, cpu = run(sp, ds, None, tokens, Path(f"/tmp/medvqa-ep-cudnn-{i}"))
        finally: ev.without_cudnn_attention = leave_out
        res.setdefault(f"evaluate_None_cudnn_{'on' if on else 'off'}", []).append({"wall_s": wall, "cpu_s": cpu, "timeline": tl})
        print(f"cuDNN attention {'on' if on else 'off'}: {samples} in {wall:.2f} s", flush=True); save()
    for b, w in ((None, 1), (None, None), (256, None), (128, None)) if "e2e" in sections else ():   # 1. end to end
        torch.cuda.reset_peak_memory_stats()
        name = f"{'auto' if b is None else f'b{b}'}{'' if w is None else f'_w{w}'}"
        with timeline([], time.perf_counter()) as tl:
            wall, cpu = run(sp, ds, b, tokens, Path(f"/tmp/medvqa-ep-{name}"), image_workers=w)
        summ = json.loads(Path(f"/tmp/medvqa-ep-{name}/eval_summary.json").read_text())
        res[f"evaluate_{b}" + ("" if w is None else f"_w{w}")] = {
            "wall_s": wall, "cpu_s": cpu, "batch": summ["batch_size"], "image_workers": summ["image_workers"],
            "timeline": tl}
        row = eval_row(sp, "batched", model, torch.cuda.get_device_name(0), summ["batch_size"], samples, wall, cpu,
                       tokens, size, res["load_s"], batch_asked=b, image_workers=summ["image_workers"],
                       image_workers_asked=w, weights=summ.get("weights"))
        (out / f"eval_cuda_{model}_batched_{name}.json").write_text(json.dumps(row, indent=2))
        print(f"batch {summ['batch_size']} ({'default' if b is None else 'asked'}), {summ['image_workers']} image threads: "
              f"{samples} in {wall:.2f} s", flush=True)
        save()

    if "cprofile" in sections:                                         # 3a. Python's view of one evaluation of 128
        pr = cProfile.Profile(); pr.enable()
        run(sp, ds.select(range(128)), 128, tokens, Path("/tmp/medvqa-ep-prof"), image_workers=1); pr.disable()
        for key in ("cumulative", "tottime"):
            s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats(key).print_stats(50)
            (out / f"cprofile_b128_{key}.txt").write_text(s.getvalue())

    sel = ds.select(range(128))                                        # 2. one batch taken apart
    t = T(); raw = sel["images"]; res["read_images_128"] = T() - t
    t = T(); ims = [to_images(x, sp.spec.max_pixels) for x in raw]; res["to_images_128"] = T() - t
    texts = [render_prompt(p, q, len(i)) for i, q in zip(ims, sel["question"])]
    flat = [i for x in ims for i in x]
    t = T(); inputs = p(text=texts, images=flat, return_tensors="pt", padding=True, padding_side="left")
    res["processor_128"] = T() - t
    w = res["image_workers"] = default_image_workers("cuda")          # the same two on evaluate's default threads
    t = T(); ims_w = to_image_lists(raw, sp.spec.max_pixels, w); res["to_images_parallel_128"] = T() - t
    t = T(); inputs_w = chunked_processor(p, w)(text=texts, images=[i for x in ims_w for i in x], return_tensors="pt",
                                                padding=True, padding_side="left")
    res["processor_parallel_128"] = T() - t
    res["parallel_same_inputs"] = set(inputs_w) == set(inputs) and all(torch.equal(inputs_w[k], inputs[k]) for k in inputs)
    inputs = inputs.to("cuda"); inputs["pixel_values"] = inputs["pixel_values"].to(m.dtype)
    res["input_shape_128"] = list(inputs["input_ids"].shape)
    kw = dict(do_sample=False, pad_token_id=p.tokenizer.pad_token_id, eos_token_id=None, temperature=None, top_p=None,
              top_k=None)
    with torch.inference_mode():
        t = T(); m.generate(**inputs, max_new_tokens=1, **kw); res["prefill_128"] = T() - t
        t = T(); ref = m.generate(**inputs, max_new_tokens=tokens, **kw); res[f"generate{tokens}_128"] = T() - t
        try:
            t = T(); m.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"]); res["vision_tower_128"] = T() - t
        except Exception as e: res["vision_tower_error"] = repr(e)[:300]
    save(); print({k: v for k, v in res.items() if k.endswith("_128")}, flush=True)

    if "varlen" in sections:
        try:                                                               # 2b. the vision tower on variable-length attention
            from medvqa.train import use_varlen_attention
            use_varlen_attention(m)                                        # registers it (and sets both parts) ...
            m.set_attn_implementation({"text_config": "sdpa"})             # ... the language model back on sdpa
            res["varlen_vision_attn"] = (m.config.vision_config._attn_implementation, m.config.text_config._attn_implementation)
            with torch.inference_mode():
                t = T(); m.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"]); res["vision_tower_varlen_128"] = T() - t
                t = T(); m.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"]); res["vision_tower_varlen_128"] = T() - t
                t = T(); m.generate(**inputs, max_new_tokens=1, **kw); res["prefill_varlen_128"] = T() - t
                t = T(); o = m.generate(**inputs, max_new_tokens=tokens, **kw); res[f"generate{tokens}_varlen_128"] = T() - t
            res["varlen_same_tokens"] = bool(torch.equal(o, ref))
            res["varlen_token_agreement"] = float((o == ref).float().mean())
            wall, cpu = run(sp, ds, None, tokens, Path("/tmp/medvqa-ep-varlen"))    # end to end, default batch and threads
            res["evaluate_None_varlen_vision"] = {"wall_s": wall, "cpu_s": cpu}
            m.set_attn_implementation({"vision_config": "sdpa"})
        except Exception:
            res["varlen_error"] = traceback.format_exc()[-1500:]
        save(); print({k: v for k, v in res.items() if "varlen" in k}, flush=True)

    if "torchprof" in sections:
        from torch.profiler import profile, ProfilerActivity              # 3b. kernels of 8 tokens
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            m.generate(**inputs, max_new_tokens=8, **kw)
        for key in ("cpu_time_total", "cuda_time_total"):
            (out / f"torchprof_b128_{key}.txt").write_text(prof.key_averages().table(sort_by=key, row_limit=40))

    if "static" in sections:
        try:                                                               # 4. static cache, compiled decode step
            with torch.inference_mode():
                for i in range(3):
                    t = T(); o = m.generate(**inputs, max_new_tokens=tokens, cache_implementation="static", **kw)
                    res[f"static_call{i + 1}_128"] = T() - t; save()
            res["static_same_tokens"] = bool(torch.equal(o, ref))
            res["static_token_agreement"] = float((o == ref).float().mean())
        except Exception:
            res["static_error"] = traceback.format_exc()[-1500:]
    if "grouped" in sections:                                          # 5. the vision tower's attention grouped by size
        sel = ds.select(range(256))
        g = {k: v.to("cuda") for k, v in ev.prepare_rows(p, sp.spec, sel, workers=w).items()}
        pv = g["pixel_values"].to(m.dtype)
        flat = lambda o: torch.cat([t.flatten() for t in (o if isinstance(o, (list, tuple)) else [getattr(o, "pooler_output", o)])])
        with torch.inference_mode():
            for name, ctx in (("plain", contextlib.nullcontext), ("grouped", lambda: ev.grouped_vision(m))) * 2:
                with ctx():
                    t = T(); o = m.model.visual(pv, grid_thw=g["image_grid_thw"]); res[f"vision_tower_{name}_256"] = T() - t
                res[f"_vision_{name}"] = flat(o)
        res["grouped_vision_same"] = bool(torch.equal(res.pop("_vision_plain"), res.pop("_vision_grouped")))
        save()
        grouped = ev.grouped_vision                                    # end to end, transformers' per-image loop ...
        for i in range(repeat):                                        # ... and grouped, taking turns
            ev.grouped_vision = lambda model: contextlib.nullcontext()
            try:
                with timeline([], time.perf_counter()) as tl:
                    wall, cpu = run(sp, ds, None, tokens, Path("/tmp/medvqa-ep-plain-vision"))
            finally: ev.grouped_vision = grouped
            res.setdefault("evaluate_None_plain_vision", []).append({"wall_s": wall, "cpu_s": cpu, "timeline": tl})
            if repeat > 1:
                wall, cpu = run(sp, ds, None, tokens, Path("/tmp/medvqa-ep-grouped-vision"))
                res.setdefault("evaluate_None_grouped_vision", []).append({"wall_s": wall, "cpu_s": cpu})
            save()
        outs = lambda d: [json.loads(l)["output"] for l in Path(d, "predictions.jsonl").read_text().splitlines()]
        differ = lambda a, b: sum(x != y for x, y in zip(outs(a), outs(b)))
        if Path("/tmp/medvqa-ep-auto/predictions.jsonl").exists():
            res["grouped_same_predictions"] = outs("/tmp/medvqa-ep-auto") == outs("/tmp/medvqa-ep-plain-vision")
            res["answers_differing_grouped_vs_plain"] = differ("/tmp/medvqa-ep-auto", "/tmp/medvqa-ep-plain-vision")
        if Path("/tmp/medvqa-ep-b256/predictions.jsonl").exists():   # the control: the same code twice (auto is 256 on an H100)
            res["answers_differing_auto_vs_b256"] = differ("/tmp/medvqa-ep-auto", "/tmp/medvqa-ep-b256")
        print({k: v for k, v in res.items() if "grouped" in k or "plain" in k}, flush=True)
    save(); print(json.dumps(res, indent=1, default=str))
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    ap.add_argument("--repeat", type=int, default=1, help="section grouped: end-to-end runs of each, taking turns")
    a = ap.parse_args()
    bad = set(a.sections.split(",")) - set(SECTIONS)
    if bad: ap.error(f"unknown sections {sorted(bad)}; known: {', '.join(SECTIONS)}")
    main(sections=a.sections.split(","), repeat=a.repeat)
