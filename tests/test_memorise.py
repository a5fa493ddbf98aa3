"""A tiny model memorises samples that only the image tells apart, through medvqa's normal train + evaluate API.

The same check as the `slow` cell of nbs/11_learnability.ipynb: the same question has different answers on
different scans, so 100% proves the images reach the model and the loss falls on the answers."""
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_memorise(tmp_path):
    from medvqa.learnability import memorise
    r = memorise(out_dir=tmp_path)
    preds = (tmp_path / "eval" / "predictions.jsonl").read_text()
    assert r["trained"]["exact_match"] == 1.0, preds
    assert r["trained"]["closed"]["accuracy"] == 1.0 and r["trained"]["open"]["exact_match"] == 1.0
    assert r["untrained"]["exact_match"] <= 0.5          # the text alone gets at most half
    assert r["train"]["steps"] == 300 and r["train"]["final_loss"] < 0.1
