"""Project hygiene: the exported package is in sync with the notebooks, notebooks are clean,
papermill's `parameters` tag survives `nbdev_clean`, every name has one home (no private name imported across
modules, no import circle) and the templates ship with the package."""
import ast, fnmatch, json, re, shutil, subprocess, sys, filecmp
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
    "`nbdev_test` on 22_cli by itself: its `__main__` guard must never run `main()` inside a notebook kernel."
    r = subprocess.run([str(BIN / "nbdev_test"), "--path", "nbs/22_cli.ipynb"], cwd=ROOT, capture_output=True, text=True,
                       env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_no_notebook_exports_while_tested():
    "A notebook that calls nbdev_export() under nbdev_test rewrites medvqa/ while other notebooks import it: such cells are `eval: false`."
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        for c in json.loads(nb.read_text())["cells"]:
            src = "".join(c["source"])
            if c["cell_type"] == "code" and ("nbdev_export()" in src or "sys.exit(main())" in src):
                assert "#| eval: false" in src, f"{nb.name}: a cell runs {src.splitlines()[-1]!r} under nbdev_test"


def _imports(pkg: Path) -> list[tuple]:
    "(module, imported medvqa module, name or None, line) for every import among the modules of `pkg`, function-local ones included."
    mods, out = {p.stem for p in pkg.glob("*.py")}, []
    for p in sorted(pkg.glob("*.py")):
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.ImportFrom):
                parts = (n.module or "").split(".")
                if n.level == 1: target = parts[0] if n.module else None
                elif n.level == 0 and parts[0] == "medvqa": target = parts[1] if len(parts) > 1 else None
                else: continue
                for a in n.names:
                    if target is not None: out.append((p.stem, target, a.name, n.lineno))
                    elif a.name in mods: out.append((p.stem, a.name, None, n.lineno))     # from medvqa import data
            elif isinstance(n, ast.Import):
                out += [(p.stem, a.name.split(".")[1], None, n.lineno) for a in n.names
                        if a.name.startswith("medvqa.")]
    return out


def _import_problems(pkg: Path) -> list[str]:
    "Private names imported from another module of `pkg`, and every circle in its import graph."
    found = _imports(pkg)
    problems = [f"{m}.py:{line}: imports the private name {name} from {t}" for m, t, name, line in found
                if name and name.startswith("_") and not name.startswith("__") and t != m]
    graph = {}
    for m, t, _, _ in found:
        if t != m: graph.setdefault(m, set()).add(t)
    state = {}
    def visit(m, path):
        state[m] = "open"; path.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open": problems.append("import circle: " + " -> ".join(path[path.index(t):] + [t]))
            elif t not in state: visit(t, path)
        path.pop(); state[m] = "done"
    for m in sorted(graph):
        if m not in state: visit(m, [])
    return problems


def test_one_home_per_name():
    "No medvqa module imports another's private name, and the modules' imports (function-local ones too) form no circle."
    assert _import_problems(ROOT / "medvqa") == []
    graph = {}
    for m, t, _, _ in _imports(ROOT / "medvqa"): graph.setdefault(m, set()).add(t)
    seen, todo = set(), ["card"]
    while todo:
        m = todo.pop()
        if m not in seen: seen.add(m); todo += graph.get(m, ())
    assert "report" not in seen, "medvqa.card must not import medvqa.report (the card is written by train and evaluate)"


def test_one_home_check_finds_problems(tmp_path):
    "The check above fails on a private import and on a circle made of a function-local import."
    (tmp_path / "a.py").write_text("from .b import _helper, shown\n")
    (tmp_path / "b.py").write_text("def f():\n    from medvqa.c import x\n")
    (tmp_path / "c.py").write_text("import medvqa.a\n")
    assert _import_problems(tmp_path) == ["a.py:1: imports the private name _helper from b", "import circle: a -> b -> c -> a"]


def test_templates_ship():
    "Every file under medvqa/templates/ is package data (pyproject.toml), so wheels and sdists carry it; the package finds it."
    import tomllib
    from importlib.resources import files
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["medvqa"]
    shipped = sorted(p.relative_to(ROOT / "medvqa").as_posix() for p in (ROOT / "medvqa" / "templates").rglob("*") if p.is_file())
    assert {"templates/report.html", "templates/report.css", "templates/model_card.md", "templates/train.ipynb"} <= set(shipped)
    assert all(any(fnmatch.fnmatch(f, g) for g in globs) for f in shipped), (shipped, globs)
    assert all(files("medvqa").joinpath(f).is_file() for f in shipped)


def _notebook_order_problems(nbs: Path, pkg: Path) -> list[str]:
    "Each exported import that reaches a notebook numbered at or above the importing one (`NN_name.ipynb`)."
    num = {}
    for nb in nbs.glob("*.ipynb"):
        m = re.search(r"#\|\s*default_exp\s+(\w+)", nb.read_text())
        if m: num[m[1]] = nb.stem
    problems = [f"{num[m]}: does not start with two digits and _" for m in num if not re.match(r"\d\d_", num[m])]
    for m, t, _, line in _imports(pkg):
        if m in num and t in num and t != m and num[t] >= num[m]:
            problems.append(f"{num[m]} ({m}.py:{line}) imports {t} from the later notebook {num[t]}")
    return sorted(set(problems))


def test_notebooks_in_build_order():
    "Each notebook's exported code imports only from lower-numbered notebooks, so they read in the order they build."
    assert _notebook_order_problems(ROOT / "nbs", ROOT / "medvqa") == []


def test_notebook_order_check_finds_problems(tmp_path):
    "The check above fails when a notebook's code imports a later one."
    (tmp_path / "nbs").mkdir(); (tmp_path / "pkg").mkdir()
    for stem, mod in (("00_a", "a"), ("01_b", "b")):
        (tmp_path / "nbs" / f"{stem}.ipynb").write_text(json.dumps({"cells": [{"source": [f"#| default_exp {mod}"]}]}))
    (tmp_path / "pkg" / "a.py").write_text("from .b import f\n")
    (tmp_path / "pkg" / "b.py").write_text("")
    assert _notebook_order_problems(tmp_path / "nbs", tmp_path / "pkg") == ["00_a (a.py:1) imports b from the later notebook 01_b"]


def test_exported_lines_fit():
    "Exported code lines are at most 120 characters (nbdev's generated docstring line, `__all__` and cell markers aside)."
    long = []
    for p in sorted((ROOT / "medvqa").glob("*.py")):
        if p.name in ("_modidx.py", "__init__.py"): continue
        in_all = False
        for i, l in enumerate(p.read_text().splitlines(), 1):
            in_all = in_all or l.startswith("__all__")
            if len(l) > 120 and not in_all and not l.startswith("# %%") and i > 1: long.append(f"{p.name}:{i}: {len(l)}")
            if in_all and l.rstrip().endswith("]"): in_all = False
    assert long == [], long
