"""A tiny model generalises from the image: trained on 512 synthetic scans with one yes/no question, it answers 128
unseen scans better than the majority rate, with the whole 95% interval above it (the `slow` cell of
nbs/11_learnability.ipynb). About three minutes on 2 cores."""
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_generalise(tmp_path):
    from medvqa.learnability import generalise
    r = generalise(out_dir=tmp_path)
    lo, hi = r["trained"]["ci"]["closed.accuracy"]
    assert r["majority_baseline"] == 0.5
    assert lo > r["majority_baseline"], ((tmp_path / "eval" / "predictions.jsonl").read_text()[:2000], lo)
