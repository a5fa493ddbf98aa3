"Text-only questions beside image questions under data-parallel training: two gloo processes on CPU, where one rank's batch has no image while the other's has one, finish (no hang) with the loss of one process over the same global batches."
import json, os, signal, subprocess, sys
from pathlib import Path

BIN = Path(sys.executable).parent
TIMEOUT_S = 420     # a hang (ranks waiting on collectives the others never join) fails the test instead of blocking it
RTOL = 1e-4         # the loss of the same global batch split over two processes: equal to float32 rounding


def _data(d: Path) -> Path:
    "Two training questions, one with an image and one without."
    from medvqa.testing import synthetic_image
    d.mkdir(parents=True, exist_ok=True)
    synthetic_image(3).save(d / "a.png")
    rows = [{"id": "img", "images": ["a.png"], "question": "Is there a lesion?", "answer": "yes", "split": "train"},
            {"id": "txt", "question": "Which organ filters the blood?", "answer": "the kidney", "split": "train"}]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "train.jsonl"


def _run(cmd, env) -> tuple[int, str]:
    "(return code, stderr) of `cmd`; past TIMEOUT_S its process group (torchrun and its workers) is killed and the test fails."
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try: _, err = p.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); p.communicate()
        raise AssertionError(f"{' '.join(cmd[:4])}: no end after {TIMEOUT_S} s, the ranks hang") from None
    return p.returncode, err


def _train(launcher: list, data: Path, out: Path, grad_accum: int) -> tuple[dict, list]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    rc, err = _run(launcher + ["-m", "medvqa.cli", "train", "--model", "tiny-qwen2vl", "--data", str(data), "--curriculum", "mixed",
                               "--max-steps", "3", "--backend", "hf", "--method", "full", "--batch-size", "1",
                               "--grad-accum", str(grad_accum), "--save-steps", "100", "--output", str(out)], env)
    assert rc == 0, err[-3000:]
    return json.loads((out / "train_summary.json").read_text()), json.loads((out / "log_history.json").read_text())


def test_text_only_and_image_ranks_train_like_one_process(tmp_path):
    data = _data(tmp_path / "data")
    from medvqa.curriculum import build_stream, make_stages
    from medvqa.data import load_vqa
    stream, _ = build_stream(make_stages(load_vqa(str(data), split="train"), "mixed", seed=0), 3, 4, seed=0)
    kinds = ["txt" if not imgs else "img" for imgs in stream["images"]]
    # under two processes rank r trains on the stream's rows r, r + 2, ...: at every micro-step one rank has no image
    assert all({kinds[i], kinds[i + 1]} == {"txt", "img"} for i in range(0, len(kinds), 2)), kinds
    s1, log1 = _train([sys.executable], data, tmp_path / "one", grad_accum=4)
    s2, log2 = _train([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", "29527"], data, tmp_path / "two", grad_accum=2)
    assert (s1["effective_batch"], s2["effective_batch"], s2["world_size"]) == (4, 4, 2)      # the same global batch
    assert [r["step"] for r in log1] == [r["step"] for r in log2] == [1, 2, 3]
    for a, b in zip(log1, log2):
        assert abs(a["loss"] - b["loss"]) <= RTOL * abs(a["loss"]), (log1, log2)
        assert abs(a["grad_norm"] - b["grad_norm"]) <= 1e-3 * abs(a["grad_norm"]), (log1, log2)


def test_max_length_skips_or_shortens_and_counts(tmp_path):
    "A six-image question whose image tokens alone pass max_length is skipped, a too-long answer is shortened; train_summary.json counts both."
    from medvqa.models import get_spec, load_processor, resolve_model_path
    from medvqa.synthetic import make_synthetic
    from medvqa.train import sample_lengths, to_conversation, train
    recs = make_synthetic(6, seed=1)
    six = dict(recs[0], id="six", images=[r["images"][0] for r in recs])
    long = dict(recs[1], id="long", answer_type="open", answer=" ".join(["a round lesion in the left lower lobe"] * 30))
    spec = get_spec("tiny-qwen2vl")
    proc = load_processor(spec, resolve_model_path(spec.key))
    p6, _ = sample_lengths(to_conversation(six, spec.max_pixels), proc)
    fits = max(sum(sample_lengths(to_conversation(r, spec.max_pixels), proc)) for r in recs)
    assert fits < p6 - 5
    s = train("tiny-qwen2vl", data=recs + [six, long], curriculum="mixed", output_dir=str(tmp_path / "run"), max_steps=1,
              batch_size=2, grad_accum=1, backend="hf", method="lora", max_length=p6 - 5)
    saved = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert saved["too_long"] == s["too_long"] == {"skipped": 1, "answer_shortened": 1} and saved["max_length"] == p6 - 5
    assert s["max_seq_len"] <= p6 - 5 and s["loss_finite"]
