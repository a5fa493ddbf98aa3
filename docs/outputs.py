"""The notebooks' documentation outputs: the scans, tables, figures and help texts a reader of the docs site sees.

A cell whose output documents its subject starts with the line `#| keep_output`. This script runs each notebook
that has such a cell the way `nbdev_test` does (in the notebook's folder, `slow`/`cuda` and `eval: false` cells
skipped, stopping at the first error), up to its last marked cell, and writes back the outputs of the marked cells
only; every other cell's output is cleared. `make outputs` runs it; `tests/test_project.py` checks that outputs sit
only in marked cells and that every marked cell has one.

    python docs/outputs.py                 # every notebook with a marked cell
    python docs/outputs.py nbs/03_synthetic.ipynb
"""
import json, os, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"^#\|\s*keep_output\s*$", re.M)


def marked(cell: dict) -> bool:
    "Is this a code cell whose output is documentation (`#| keep_output` among its leading directive lines)?"
    if cell["cell_type"] != "code": return False
    for line in "".join(cell["source"]).splitlines():
        if not line.startswith("#|"): return False
        if MARK.match(line): return True
    return False


def _clean(outputs: list) -> list:
    "Outputs as nbdev_clean leaves them: no execution counts, no per-output metadata that changes from run to run."
    out = []
    for o in outputs:
        o = dict(o)
        if "execution_count" in o: o["execution_count"] = None
        if o.get("output_type") == "stream" and o.get("name") == "stderr": continue     # warnings are not documentation
        out.append(o)
    return out


def document(nb_path: Path) -> int:
    "Run `nb_path` up to its last marked cell and store the marked cells' outputs; the number of cells given output."
    from execnb.shell import CaptureShell
    from nbdev.process import NBProcessor
    from nbdev.config import get_config
    from fastcore.xtras import working_directory
    raw = json.loads(nb_path.read_text(encoding="utf-8"))
    keep = [i for i, c in enumerate(raw["cells"]) if marked(c)]
    for c in raw["cells"]:
        if c["cell_type"] == "code": c["outputs"], c["execution_count"] = [], None
    if keep:
        flags = set(get_config().tst_flags.split())
        nb = NBProcessor(nb_path, process=True).nb
        sh = CaptureShell(nb_path, mpl_format="png")
        os.environ["IN_TEST"] = "1"
        with working_directory(nb_path.parent):
            for i, cell in enumerate(nb.cells[: keep[-1] + 1]):
                if cell.cell_type != "code" or "nbdev_export" + "(" in cell.source: continue
                direc = getattr(cell, "directives_", {}) or {}
                if direc.get("eval:", [""])[0].lower() == "false" or flags & direc.keys(): continue
                sh.cell(cell)
                if sh.exc: raise RuntimeError(f"{nb_path.name}: cell {i} failed:\n{sh.prettytb(fname=nb_path)}")
                if i in keep: raw["cells"][i]["outputs"] = _clean(cell.outputs)
    nb_path.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return len(keep)


def main(argv=None) -> int:
    paths = [Path(p) for p in (argv or sys.argv[1:])] or sorted((ROOT / "nbs").glob("*.ipynb"))
    for p in paths:
        if not any(marked(c) for c in json.loads(p.read_text(encoding="utf-8"))["cells"]): continue
        print(f"{p.name}: {document(p.resolve())} cell(s) with documentation output", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
