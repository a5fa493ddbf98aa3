"Every real layout loads and reports stats; every awkward input is skipped or loads, as medvqa.data, medvqa.images and medvqa.hygiene promise."
import json

import numpy as np
import pytest

from medvqa.core import DataError
from medvqa.data import FEATURES, detect_format, load_vqa
from medvqa.hygiene import data_stats
from medvqa.images import prepare_image
from medvqa.testing import FIXTURE_KINDS, INPUT_CASES, write_input_fixture, write_layout_fixture

STATS_KEYS = {"samples", "open", "closed", "images", "skipped", "duplicates", "leakage", "by_source"}


@pytest.mark.parametrize("kind", FIXTURE_KINDS)
def test_layout_loads(kind, tmp_path):
    path = write_layout_fixture(kind, tmp_path / kind)
    assert detect_format(path) == kind
    report = []
    ds = load_vqa(path, report=report)
    assert report == [] and len(ds) > 0 and ds.features == FEATURES
    st = data_stats(ds)
    assert STATS_KEYS <= set(st)
    assert st["samples"] == len(ds) == st["open"] + st["closed"]
    json.dumps(st)
    img = prepare_image(ds[0]["images"][0])
    assert img.mode == "RGB"


def test_vqa_rad_leakage_is_reported(tmp_path):
    for kind in ("vqa-rad-hf", "vqa-rad-json"):
        st = data_stats(load_vqa(write_layout_fixture(kind, tmp_path / kind)))
        assert st["leakage"]["by_split"]["test"]["images_in_train"] >= 1


@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_input_case(case, tmp_path):
    path = write_input_fixture(case, tmp_path / case)
    report = []
    ds = load_vqa(path, report=report)
    if INPUT_CASES[case] == "skip":
        assert len(ds) == 1 and len(report) == 1
        assert report[0]["file"].endswith("train.jsonl") and report[0]["record"].startswith("line 2")
        assert data_stats(ds)["skipped"] == 1
        with pytest.raises(DataError, match="train.jsonl: record line 2"):
            load_vqa(path, on_error="raise")
    else:
        assert len(ds) == 2 and report == []
        img = np.asarray(prepare_image(ds[1]["images"][0]))
        assert img.dtype == np.uint8 and img.ndim == 3 and img.std() > 10
