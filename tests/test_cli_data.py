"`medvqa data stats` and `medvqa data curriculum` from the shell, on fixtures written in every real layout."
import json, os, subprocess, sys
from pathlib import Path
import pytest
from medvqa.testing import FIXTURE_KINDS, write_layout_fixture, write_input_fixture
from medvqa.synthetic import default_data

MEDVQA = str(Path(sys.executable).parent / "medvqa")


def cli(*args, ok=True):
    r = subprocess.run([MEDVQA, *map(str, args)], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if ok: assert r.returncode == 0, r.stderr[-2000:]
    return r


@pytest.mark.parametrize("kind", FIXTURE_KINDS)
def test_data_stats_every_layout(kind, tmp_path):
    path = write_layout_fixture(kind, tmp_path / kind)
    s = json.loads(cli("data", "stats", path, "--format", kind).stdout)
    for k in ("samples", "open", "closed", "images", "skipped", "duplicates", "by_source"): assert k in s, (kind, k)
    assert s["samples"] > 0 and s["open"] + s["closed"] == s["samples"]


def test_data_stats_leakage_shipped():
    d = default_data()
    s = json.loads(cli("data", "stats", d, "--split", "train", "--test", d, "--test-split", "test").stdout)
    assert s["leakage"] is not None and "same_image" in s["leakage"]


def test_data_stats_bad_image_is_counted(tmp_path):
    path = write_input_fixture("corrupt_image", tmp_path / "bad")
    s = json.loads(cli("data", "stats", path).stdout)
    assert s["skipped"] >= 1


def test_curriculum_plan_json():
    out = json.loads(cli("data", "curriculum", default_data(), "--strategy", "open_then_closed").stdout)
    assert [st["name"] for st in out] == ["open", "closed"]
    assert out[0]["open"] > 0 and out[0]["closed"] == 0 and out[1]["closed"] > 0


def test_unknown_strategy_is_one_clear_line():
    r = cli("data", "curriculum", default_data(), "--strategy", "nonsense", ok=False)
    assert r.returncode == 2 and "medvqa: error:" in r.stderr and "open_then_closed" in r.stderr


def test_imagefolder_detected_and_all_missing_images_fail(tmp_path):
    "Hugging Face's imagefolder layout is read without --format; forced through the wrong reader, no image is found: exit 2, the folder named."
    from medvqa.testing import write_imagefolder_fixture
    path = write_imagefolder_fixture(tmp_path / "hf")
    s = json.loads(cli("data", "stats", path).stdout)
    assert s["samples"] == 6 and set(s["by_split"]) == {"train", "test"}
    r = cli("data", "stats", path, "--format", "generic", ok=False)
    assert r.returncode == 2 and f"not one image of its 6 record(s) exists: they were looked for in {path}" in r.stderr, r.stderr[-800:]


def test_slake_languages_dropped_and_counted(tmp_path):
    path = write_layout_fixture("slake", tmp_path / "slake")
    s = json.loads(cli("data", "stats", path).stdout)
    assert (s["samples"], s["dropped"]) == (5, {"language": 2})
    assert json.loads(cli("data", "stats", path, "--lang", "all").stdout)["samples"] == 7
