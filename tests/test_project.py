"""Project hygiene: the exported package is in sync with the notebooks, notebooks are clean,
and papermill's `parameters` tag survives `nbdev_clean`."""
import json, re, shutil, subprocess, sys, filecmp
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
from outputs import marked          # which cells keep their output: docs/outputs.py decides, once
BIN = Path(sys.executable).parent


def _copy_project(tmp):
    dst = tmp / "proj"
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(".venv", ".git", "reports", "__pycache__", ".whl", "_proc", "_docs", "*.egg-info"))
    return dst


def test_export_in_sync(tmp_path):
    "nbdev_export on a copy of the project writes exactly the committed medvqa/*.py."
    proj = _copy_project(tmp_path)
    subprocess.run([str(BIN / "nbdev_export")], cwd=proj, check=True, capture_output=True)
    cmp = filecmp.dircmp(ROOT / "medvqa", proj / "medvqa", ignore=["__pycache__", "fixtures", "templates"])
    assert not cmp.diff_files, f"medvqa/ out of sync with nbs/ (run nbdev_export): {cmp.diff_files}"
    assert not cmp.right_only, f"nbdev_export creates files not committed: {cmp.right_only}"


def test_notebooks_clean():
    "No execution counts in git (`nbdev_clean` was run); outputs only where they are the documentation (`#| keep_output`,\n    written by `make outputs`), and every such cell has its output."
    size = 0
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        for i, c in enumerate(json.loads(nb.read_text())["cells"]):
            if c["cell_type"] != "code": continue
            assert c.get("execution_count") is None, f"{nb.name} cell {i} has an execution count"
            if marked(c):
                assert c.get("outputs"), f"{nb.name} cell {i} is marked keep_output but has no output (run make outputs)"
                assert all(o["output_type"] != "error" for o in c["outputs"]), f"{nb.name} cell {i} keeps an error"
                size += len(json.dumps(c["outputs"]))
            else:
                assert not c.get("outputs"), f"{nb.name} cell {i} has outputs but is not marked keep_output"
    assert size < 3_000_000, f"documentation outputs take {size:,} bytes"


def _definition_cells(nb: Path) -> list[str]:
    "Export cells that have no test before the next definition, or more than four definitions (fastcore's house style)."
    out, pending = [], None
    for i, c in enumerate(json.loads(nb.read_text())["cells"]):
        if c["cell_type"] != "code": continue
        src = "".join(c["source"])
        if re.match(r"\s*#\|\s*export", src):
            defs = re.findall(r"^(?:async def|def|class) (\w+)", src, re.M)
            if not defs: continue
            if pending: out.append(f"{nb.name} cell {pending[0]} ({', '.join(pending[1])}): no test under it")
            if len(defs) > 4: out.append(f"{nb.name} cell {i}: {len(defs)} definitions in one cell ({', '.join(defs)})")
            pending = (i, defs)
        elif re.search(r"\b(test_\w+|assert)\b", src):
            pending = None
    if pending: out.append(f"{nb.name} cell {pending[0]} ({', '.join(pending[1])}): no test under it")
    return out


def test_tests_under_the_code():
    "Every exported function (or family of at most four) is followed by its tests before the next definition."
    problems = [p for nb in sorted((ROOT / "nbs").glob("[0-9]*.ipynb")) for p in _definition_cells(nb)]
    assert not problems, "\n".join(problems)


def test_parameters_tag_survives_clean(tmp_path):
    "nbdev_clean keeps cell tags (allowed_cell_metadata_keys = tags), so papermill still finds `parameters`."
    proj = _copy_project(tmp_path)
    nb = proj / "nbs" / "train.ipynb"
    d = json.loads(nb.read_text())
    for c in d["cells"]:                       # dirty it as a run in JupyterLab would
        if c["cell_type"] == "code": c["execution_count"] = 7; c["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["x"]}]
        c["metadata"]["collapsed"] = True
    nb.write_text(json.dumps(d))
    subprocess.run([str(BIN / "nbdev_clean"), "--fname", str(nb)], cwd=proj, check=True, capture_output=True)
    cleaned = json.loads(nb.read_text())
    tagged = [c for c in cleaned["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, "papermill's parameters cell lost its tag"
    assert all(c.get("execution_count") is None for c in cleaned["cells"] if c["cell_type"] == "code")
    assert all("collapsed" not in c["metadata"] for c in cleaned["cells"])
    assert cleaned["metadata"]["kernelspec"]["name"] == "python3"


def test_cli_notebook_alone():
    "`nbdev_test` on 10_cli by itself: its `__main__` guard must never run `main()` inside a notebook kernel."
    r = subprocess.run([str(BIN / "nbdev_test"), "--path", "nbs/10_cli.ipynb"], cwd=ROOT, capture_output=True, text=True,
                       env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_no_notebook_exports_while_tested():
    "A notebook that calls nbdev_export() under nbdev_test rewrites medvqa/ while other notebooks import it: such cells are `eval: false`."
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        for c in json.loads(nb.read_text())["cells"]:
            src = "".join(c["source"])
            if c["cell_type"] == "code" and ("nbdev_export()" in src or "sys.exit(main())" in src):
                assert "#| eval: false" in src, f"{nb.name}: a cell runs {src.splitlines()[-1]!r} under nbdev_test"
