"""A merged export and a full fine-tuning run folder load where medvqa is not installed, with transformers' own classes,
and answer the demo test questions exactly as `medvqa evaluate` does. The loading code is docs/load_export.py, which
docs/export.md shows word for word; it runs here in a process of its own that never imports medvqa."""
import json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = ROOT / "docs" / "load_export.py"
FOLDER_LINE = 'folder = "runs/export"'
EXAMPLE_LINE = 'print(answer(Image.open("scan.png"), "Is there a lesion?"))'
N = 32                                                       # demo test questions compared

MIN_NEW = 12            # tokens generated past the answer too: long outputs that hinge on every logit, not one word

# the child: the lines of docs/export.md with the folder named and the example call left out, then one answer per question
CHILD = """
import json, sys, torch
src, folder, questions, logits_file = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
code = open(src).read()
assert code.count({folder_line!r}) == 1 and code.count({example_line!r}) == 1
exec(code.replace({folder_line!r}, "folder = " + repr(folder)).replace({example_line!r}, ""))
first = []              # the logits of each answer's first token, which the image and the prompt decide
model.register_forward_hook(lambda m, a, kw, out: first.append(out.logits[0, -1].float()) if kw["input_ids"].shape[1] > 1 else None,
                            with_kwargs=True)
outputs = {{q["id"]: answer(Image.open(q["image"]), q["question"], min_new_tokens={min_new}) for q in questions}}
assert not any(m == "medvqa" or m.startswith("medvqa.") for m in sys.modules), "medvqa was imported"
torch.save(torch.stack(first), logits_file)
print(json.dumps(outputs))
""".format(folder_line=FOLDER_LINE, example_line=EXAMPLE_LINE, min_new=MIN_NEW)


# where torchvision is installed: transformers' AutoProcessor instead of the lines of docs/export.md (no image needs shrinking here)
AUTO_CHILD = """
import json, sys
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
folder, questions, expected_class = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
model = AutoModelForImageTextToText.from_pretrained(folder).eval()
processor = AutoProcessor.from_pretrained(folder)
assert type(processor).__name__ == expected_class, type(processor).__name__
outputs = {{}}
for q in questions:
    turn = [{{"role": "user", "content": [{{"type": "image"}}, {{"type": "text", "text": q["question"]}}]}}]
    text = processor.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.open(q["image"]).convert("RGB")], return_tensors="pt")
    out = model.generate(**inputs, do_sample=False, max_new_tokens=32, min_new_tokens={min_new})
    outputs[q["id"]] = processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0].strip()
assert not any(m == "medvqa" or m.startswith("medvqa.") for m in sys.modules), "medvqa was imported"
print(json.dumps(outputs))
""".format(min_new=MIN_NEW)

def test_docs_show_the_snippet():
    "docs/export.md shows docs/load_export.py verbatim, so the lines a user copies are the lines tested below."
    assert f"```python\n{SNIPPET.read_text()}```" in (ROOT / "docs" / "export.md").read_text()


def _questions(predictions: list[dict]) -> list[dict]:
    "The demo test questions of `predictions`: id, question and the path of the one image."
    from medvqa.synthetic import demo_dir
    rows = {r["id"]: r for r in map(json.loads, (demo_dir() / "test.jsonl").read_text().splitlines())}
    assert all(len(rows[p["id"]]["images"]) == 1 for p in predictions)
    return [{"id": p["id"], "question": rows[p["id"]]["question"], "image": str(demo_dir() / rows[p["id"]]["images"][0])}
            for p in predictions]


def _without_medvqa(code: str, *args) -> dict:
    "Run `code` with `args` in a fresh process, medvqa's checkout off the path; the JSON it prints last."
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("PYTHONPATH", None)
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd="/", env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _evaluate(spec, out, adapter, model_path=None) -> tuple[list[dict], list]:
    "`medvqa evaluate` (on the CPU, as the children run) on the first N demo test questions: its predictions, and each answer's first-token logits."
    from medvqa.evaluate import Specialist, evaluate
    sp = Specialist(spec, adapter=adapter, model_path=model_path, device="cpu")
    first = []
    net = sp.model.get_base_model() if hasattr(sp.model, "get_base_model") else sp.model
    net.register_forward_hook(lambda m, a, kw, o: first.extend(o.logits[:, -1].float()) if kw["input_ids"].shape[1] > 1 else None,
                              with_kwargs=True)
    evaluate(sp, output_dir=str(out), max_samples=N, progress=False, min_new_tokens=MIN_NEW)
    preds = [json.loads(l) for l in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == N and len(first) == N and all(len(p["output"]) > 3 for p in preds)
    return preds, first


def _same_outputs(preds: list[dict], got: dict):
    diff = [(p["id"], p["output"], got[p["id"]]) for p in preds if got[p["id"]] != p["output"]]
    assert not diff, f"{len(diff)} of {N} outputs differ (id, medvqa evaluate, transformers alone): {diff[:5]}"


def _evaluate_then_compare(spec, folder, out, adapter, model_path=None):
    "`medvqa evaluate`, then the lines of docs/export.md on `folder`: the same outputs, character for character, and the same first-token logits (to 1e-4: evaluate pads its batches, the snippet answers one question at a time)."
    import torch
    preds, first = _evaluate(spec, out, adapter, model_path)
    _same_outputs(preds, _without_medvqa(CHILD, SNIPPET, folder, json.dumps(_questions(preds)), out / "logits.pt"))
    gap = (torch.load(out / "logits.pt") - torch.stack(first)).abs().amax(dim=1)
    assert gap.max() < 1e-4, f"first-token logits differ by up to {gap.max():.3g} ({int((gap >= 1e-4).sum())} of {N} questions)"


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    "Every weight of tiny-qwen3vl trained for 30 steps on the demo data: enough to answer in words, not in repeated new lines."
    from medvqa.train import train
    out = tmp_path_factory.mktemp("export_load") / "full"
    train("tiny-qwen3vl", output_dir=str(out), max_steps=30, backend="hf", batch_size=8, grad_accum=1, save_steps=1000, method="full")
    return out


@pytest.mark.slow
def test_full_run_folder_answers_like_evaluate(full_run, tmp_path):
    "Full fine-tuning: transformers alone on the run folder gives `evaluate`'s outputs on it."
    for name in ("processor_config.json", "tokenizer_config.json"):
        assert json.loads((full_run / name).read_text())["processor_class"] == "Qwen3VLProcessor"
    gen = json.loads((full_run / "generation_config.json").read_text())
    assert (gen["do_sample"], gen["eos_token_id"], gen["pad_token_id"]) == (False, 151645, 151643)
    _evaluate_then_compare("tiny-qwen3vl", full_run, tmp_path / "eval", str(full_run))


@pytest.mark.slow
def test_merged_export_answers_like_evaluate(full_run, tmp_path):
    "A LoRA adapter (vision tower too) over the fully trained model, merged by `export_merged`: transformers alone on the export gives `evaluate`'s outputs on base + adapter. Images of at most 96 x 96 pixels, so that the demo's 128 x 128 scans are shrunk first (the snippet's resize)."
    from medvqa.models import spec_with
    from medvqa.train import train, export_merged
    spec, run, export = spec_with("tiny-qwen3vl", max_pixels=96 * 96), tmp_path / "lora", tmp_path / "export"
    train(spec, output_dir=str(run), model_path=str(full_run), max_steps=3, backend="hf", batch_size=4, grad_accum=1,
          save_steps=1000, method="lora", learning_rate=5e-3)
    info = export_merged(spec, run, export, model_path=str(full_run))
    assert info["dtype"] == "float32" and info["adapter_effect"] > 1e-3
    assert (export / "chat_template.jinja").exists()
    assert json.loads((export / "preprocessor_config.json").read_text())["size"]["longest_edge"] == 96 * 96
    _evaluate_then_compare(spec, export, tmp_path / "eval", str(run), str(full_run))


@pytest.mark.slow
def test_autoprocessor_where_torchvision(full_run, tmp_path):
    "Where torchvision is installed (a GPU machine; never on this project's CPU machine, where it breaks torch), `AutoProcessor` loads the run folder as transformers' Qwen3VLProcessor and answers as `evaluate` does."
    pytest.importorskip("torchvision")
    preds, _ = _evaluate("tiny-qwen3vl", tmp_path / "eval", str(full_run))
    _same_outputs(preds, _without_medvqa(AUTO_CHILD, full_run, json.dumps(_questions(preds)), "Qwen3VLProcessor"))
