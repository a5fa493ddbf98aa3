#!/usr/bin/env python3
"""Why the tiny models' vision merger is scaled at initialisation: a plain full fine-tuning loop over medvqa's own
processor, chat template, synthetic lesion set and scorer, with the merger's weights multiplied by a gain.

Each variant trains a freshly built tiny model (every weight, AdamW, 30 warm-up steps then a constant learning rate,
gradient clipping 1.0, loss on the answer tokens only) on 2,048 synthetic samples and scores greedy answers on 256
held-out ones every EVAL_EVERY steps; the gradient norms of the vision tower and of the rest are recorded at a few steps.

    python benchmarks/image_gain.py --key tiny-qwen3vl --mode all30 --steps 1500 --tag q3all30
    modes: none | allG (every 2-D merger weight x G) | lastG (only the merger's output projection x G)

Appends one JSON line per evaluation / gradient probe to benchmarks/results/image_gain.jsonl (or --out).
"""
from __future__ import annotations
import argparse, json, os, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--key", default="tiny-qwen3vl"); ap.add_argument("--mode", default="all30")
    ap.add_argument("--steps", type=int, default=1500); ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3); ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--freeze-embeddings", action="store_true"); ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(HERE / "results" / "image_gain.jsonl"))
    a = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForImageTextToText
    from medvqa.data import target_text
    from medvqa.images import prepare_image
    from medvqa.evaluate import generate_batch, answer_part
    from medvqa.metrics import score
    from medvqa.builders import scale_image_path, tiny_model_dir
    from medvqa.chat import load_processor, render_prompt
    from medvqa.models import get_spec
    from medvqa.synthetic import make_synthetic

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    train = make_synthetic(2048, seed=0, size=64, split="train"); test = make_synthetic(256, seed=0, size=64, split="test")
    spec = get_spec(a.key); d = tiny_model_dir(spec, image_gain=1)          # gain 1: the variant applies its own
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(d, dtype=torch.float32).to(dev); proc = load_processor(spec, d)
    if a.mode.startswith("all"): scale_image_path(model, float(a.mode[3:]))
    elif a.mode.startswith("last"):
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "visual" in n and "merger" in n and (".linear_fc2." in n or ".mlp.2." in n): p.mul_(float(a.mode[4:]))
    if a.freeze_embeddings: model.get_input_embeddings().weight.requires_grad_(False)
    tag = a.tag or f"{a.key}-{a.mode}"
    def log(row):
        row = {"tag": tag, "key": a.key, "mode": a.mode, "lr": a.lr, "batch_size": a.batch_size, "device": dev, **row}
        print(json.dumps(row), flush=True)
        with open(a.out, "a") as f: f.write(json.dumps(row) + "\n")

    def encode(recs):
        texts = [render_prompt(proc, r["question"], 1) + target_text(r) + "<|im_end|>" for r in recs]
        imgs = [[prepare_image(r["images"][0], max_pixels=spec.max_pixels)] for r in recs]
        enc = proc(text=texts, images=imgs, padding=True, padding_side="left", return_tensors="pt")
        ids = enc["input_ids"]; labels = torch.full_like(ids, -100); start = proc.tokenizer.convert_tokens_to_ids("<|im_start|>")
        for i in range(len(recs)):
            pos = (ids[i] == start).nonzero().flatten()[-1].item() + 3; labels[i, pos:] = ids[i, pos:]
        k = int((labels != -100).sum(1).max()) + 1
        return enc.to(dev), labels.to(dev), k

    def evaluate():
        model.eval(); preds = []
        for i in range(0, len(test), 64):
            b = test[i:i + 64]
            preds += generate_batch(model, proc, [[prepare_image(r["images"][0], max_pixels=spec.max_pixels)] for r in b],
                                    [r["question"] for r in b], max_new_tokens=4)
        model.train()
        m = score([dict(question=r["question"], answer=r["answer"], prediction=answer_part(p), answer_type=r["answer_type"])
                   for r, p in zip(test, preds)])
        return m["closed"]["accuracy"], m["open"]["exact_match"]

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 30))
    g = torch.Generator().manual_seed(0); t0 = time.time(); model.train()
    for step in range(1, a.steps + 1):
        enc, labels, k = encode([train[i] for i in torch.randint(0, len(train), (a.batch_size,), generator=g).tolist()])
        logits = model(**enc, logits_to_keep=k).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, -k + 1:].reshape(-1), ignore_index=-100)
        loss.backward()
        if step in (5, 50, 200, 500, 1000, 1500):
            norm = lambda vis: float(sum(p.grad.norm() ** 2 for n, p in model.named_parameters()
                                         if ("visual" in n) == vis and p.grad is not None) ** .5)
            log({"step": step, "grad_norm_vision": norm(True), "grad_norm_text": norm(False)})
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); sched.step(); opt.zero_grad()
        if step % a.eval_every == 0:
            c, o = evaluate(); log({"step": step, "loss": loss.item(), "closed_accuracy": c, "open_exact_match": o, "s": round(time.time() - t0, 1)})


if __name__ == "__main__":
    main()
