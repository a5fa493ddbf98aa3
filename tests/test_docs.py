"The documentation site builds from the notebooks (none is executed), and its home page says what README.md says."
import json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_index_matches_readme():
    "nbs/index.ipynb holds README.md's opening up to 'What the runs show', word for word, then one note."
    readme = (ROOT / "README.md").read_text()
    opening = readme[:readme.index("## What the runs show")].strip()
    cells = ["".join(c["source"]).strip() for c in json.loads((ROOT / "nbs" / "index.ipynb").read_text())["cells"]]
    assert cells[-1].startswith("> This page repeats the opening of `README.md`")
    assert "\n\n".join(cells[:-1]) == opening, "nbs/index.ipynb and README.md differ: copy the README's sections into the notebook"


def test_docs_build(tmp_path):
    "`make docs` (mkdocs + mkdocs-jupyter) writes the home page and an API page; fast, because nothing is executed."
    pytest.importorskip("mkdocs_jupyter")
    site = tmp_path / "site"
    r = subprocess.run([str(BIN / "mkdocs"), "build", "-q", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    home = (site / "index.html").read_text()
    assert "Quick start" in home and "Notebooks" in home and (site / "reports" / "screenshot.png").is_file()
    data = (site / "04_data" / "index.html").read_text()
    assert 'id="api-load_vqa"' in data and "load_vqa(source, format" in data        # the module's API, from its source
    assert 'id="api-ImageHashes"' in (site / "01_images" / "index.html").read_text()
