"A training run killed mid-way (SIGKILL after a checkpoint) and resumed ends at the same step count, its log continuing where it stopped."
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from medvqa.testing import kill_and_resume


def test_killed_run_resumes(tmp_path):
    r = kill_and_resume(tmp_path, key="tiny-qwen2vl", max_steps=8, save_steps=2, kill_after=4)
    assert r["killed_at"] >= 4
    assert r["summary"]["resumed_from"] and r["summary"]["resumed_from"].endswith(f"checkpoint-{r['killed_at']}")
    assert r["summary"]["steps"] == 8
    assert [h["step"] for h in r["log"]] == list(range(1, 9))
    # the curve before the crash is kept as it was, and continues after it
    n = len(r["before"])
    assert n == r["killed_at"]
    assert [h["loss"] for h in r["log"][:n]] == [h["loss"] for h in r["before"]]
    assert all(h["stage"] in ("open", "closed") for h in r["log"])
