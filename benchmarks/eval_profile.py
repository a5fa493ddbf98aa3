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
   greedy tokens equal the dynamic cache's.

    python benchmarks/eval_profile.py            # OUT defaults to /tmp/medvqa-eval-profile

Everything goes to OUT (eval_profile.json, cprofile_*.txt, torchprof_*.txt), written as it is measured, so a run cut
short keeps what it measured.
"""
from __future__ import annotations
import cProfile, io, json, os, pstats, sys, time, traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE)); sys.path.insert(0, str(HERE.parent))


def main(model: str = "qwen3vl2b", samples: int = 451, size: int = 448, tokens: int = 32):
    import torch
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
    for b, w in ((None, 1), (None, None), (256, None), (128, None)):   # 1. end to end
        torch.cuda.reset_peak_memory_stats()
        name = f"{'auto' if b is None else f'b{b}'}{'' if w is None else f'_w{w}'}"
        wall, cpu = run(sp, ds, b, tokens, Path(f"/tmp/medvqa-ep-{name}"), image_workers=w)
        summ = json.loads(Path(f"/tmp/medvqa-ep-{name}/eval_summary.json").read_text())
        res[f"evaluate_{b}" + ("" if w is None else f"_w{w}")] = {
            "wall_s": wall, "cpu_s": cpu, "batch": summ["batch_size"], "image_workers": summ["image_workers"]}
        row = eval_row(sp, "batched", model, torch.cuda.get_device_name(0), summ["batch_size"], samples, wall, cpu,
                       tokens, size, res["load_s"], batch_asked=b, image_workers=summ["image_workers"],
                       image_workers_asked=w, weights=summ.get("weights"))
        (out / f"eval_cuda_{model}_batched_{name}.json").write_text(json.dumps(row, indent=2))
        print(f"batch {summ['batch_size']} ({'default' if b is None else 'asked'}), {summ['image_workers']} image threads: "
              f"{samples} in {wall:.2f} s", flush=True)
        save()

    pr = cProfile.Profile(); pr.enable()                               # 3a. Python's view of one evaluation of 128
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

    from torch.profiler import profile, ProfilerActivity              # 3b. kernels of 8 tokens
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        m.generate(**inputs, max_new_tokens=8, **kw)
    for key in ("cpu_time_total", "cuda_time_total"):
        (out / f"torchprof_b128_{key}.txt").write_text(prof.key_averages().table(sort_by=key, row_limit=40))

    try:                                                               # 4. static cache, compiled decode step
        with torch.inference_mode():
            for i in range(3):
                t = T(); o = m.generate(**inputs, max_new_tokens=tokens, cache_implementation="static", **kw)
                res[f"static_call{i + 1}_128"] = T() - t; save()
        res["static_same_tokens"] = bool(torch.equal(o, ref))
        res["static_token_agreement"] = float((o == ref).float().mean())
    except Exception:
        res["static_error"] = traceback.format_exc()[-1500:]
    save(); print(json.dumps(res, indent=1, default=str))
    return res


if __name__ == "__main__":
    main()
