#!/usr/bin/env python3
"""medvqa's variable-length attention on a CUDA GPU (the `#| cuda` cell of nbs/18_train.ipynb, and a timing):

1. torch's kernel (`medvqa.train.torch_varlen`) against the per-sample reference in float32 on the CPU, forward and
   backward, bfloat16: a language model's causal GQA attention (16 query heads, 2 kv heads of 128) and a vision
   tower's full attention (16 heads of 80);
2. both tiny models on the GPU in bfloat16: the packed batch's loss through the kernel against the padded one's under
   sdpa, and the kernel calls of each part (causal: language model; full: vision tower);
3. attention alone, forward and backward, on one packed row of 8 samples (4,306 tokens, the realistic mix's size),
   Qwen3-VL-2B's heads: the kernel against sdpa with the block-diagonal mask packing had before.

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 python benchmarks/varlen_check.py

Prints one JSON object; exits 1 when an error passes its bound.
"""
from __future__ import annotations
import inspect, json, os, sys, time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    import torch
    if not torch.cuda.is_available(): sys.exit("varlen_check.py needs a CUDA GPU (torch's kernel is CUDA only)")
    import medvqa.train as T
    from torch.nn.attention import varlen
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling
    from medvqa.models import get_spec, load_model
    from medvqa.synthetic import make_synthetic
    out, ok = {"torch": torch.__version__, "varlen_attn": str(inspect.signature(varlen.varlen_attn)),
               "device": torch.cuda.get_device_name()}, True
    torch.manual_seed(0)
    lens = torch.tensor([37, 301, 5, 128, 64, 1000])
    cu = torch.nn.functional.pad(lens.cumsum(0), (1, 0)).to(torch.int32)
    rel = lambda a, b: round(((a.float().cpu() - b).abs().max() / b.abs().max()).item(), 5)
    for causal, h, hkv, d in ((True, 16, 2, 128), (False, 16, 16, 80)):
        x = [torch.randn(int(lens.sum()), n, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
             for n in (h, hkv, hkv)]
        o = T.torch_varlen(*x, cu.cuda(), cu.cuda(), int(lens.max()), int(lens.max()), causal, d ** -0.5)
        xr = [t.detach().float().cpu().requires_grad_() for t in x]
        ref = T.per_sample_attention(*xr, cu, cu, causal, d ** -0.5)
        g = torch.randn_like(ref)
        o.backward(g.to(o)); ref.backward(g)
        errs = [rel(o.detach(), ref.detach())] + [rel(a.grad, b.grad) for a, b in zip(x, xr)]
        out[f"{'causal' if causal else 'full'} {h}/{hkv} heads of {d}: relative error out, dq, dk, dv"] = errs
        ok &= max(errs) < 2e-2
    rows = make_synthetic(4, seed=3)
    rows[1]["images"] = rows[1]["images"] * 2
    for key in ("tiny-qwen2vl", "tiny-qwen3vl"):
        m, p = load_model(key, device="cuda", dtype="bfloat16"); T.patch_answer_only_loss(m)
        b = DataCollatorForVisionLanguageModeling(p, completion_only_loss=True)(
            [T.to_conversation(r, get_spec(key).max_pixels) for r in rows])
        padded = m(**{k: v.cuda() for k, v in b.items()}).loss.item()
        impl = T.use_varlen_attention(m); T.patch_packed_forward(m)
        pk = T.pack_batch(b, T.RopeIndex(m))
        calls, real = [], T.torch_varlen
        T.torch_varlen = lambda *a: calls.append(a[7]) or real(*a)
        try: packed = m(**{k: v.cuda() for k, v in pk.items()}).loss.item()
        finally: T.torch_varlen = real
        out[key] = dict(attn_implementation=impl, padded_sdpa_loss=padded, packed_varlen_loss=packed,
                        kernel_calls_causal=calls.count(True), kernel_calls_full=calls.count(False))
        ok &= abs(packed - padded) < 2e-2 * abs(padded) and calls.count(True) > 0 and calls.count(False) > 0
    lens = torch.tensor([180, 950, 240, 610, 420, 150, 1200, 556])
    n, mx = int(lens.sum()), int(lens.max())
    cu = torch.nn.functional.pad(lens.cumsum(0), (1, 0)).to(torch.int32).cuda()
    q = torch.randn(n, 16, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k, v = (torch.randn(n, 8, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(2))
    seg = torch.repeat_interleave(torch.arange(len(lens), device="cuda"), lens.cuda())
    mask = (seg[:, None] == seg[None]) & torch.ones(n, n, dtype=torch.bool, device="cuda").tril()
    sdpa = lambda: torch.nn.functional.scaled_dot_product_attention(
        q.transpose(0, 1)[None], *(t.transpose(0, 1)[None].repeat_interleave(2, 1) for t in (k, v)), attn_mask=mask)
    def ms(f, reps=50):
        for _ in range(5): f().float().sum().backward()
        torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(reps): f().float().sum().backward()
        torch.cuda.synchronize(); return round((time.perf_counter() - t) / reps * 1e3, 3)
    out["one layer's attention, 8 samples in 4,306 tokens, forward+backward ms"] = {
        "varlen kernel": ms(lambda: T.torch_varlen(q, k, v, cu, cu, mx, mx, True)),
        "sdpa, block-diagonal mask": ms(sdpa)}
    out["ok"] = bool(ok)
    print(json.dumps(out, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
