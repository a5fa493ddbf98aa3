"""mkdocs hooks for medvqa's documentation site (see mkdocs.yml).

Each exported notebook's page ends with the API of its module, the part of nbdev's `show_doc` that needs no
running kernel: every name in the module's `__all__` with its signature and docstring. The module's source is
parsed, never imported, so building the site does not load torch or transformers and runs no notebook."""
import ast, html, json, re, shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module_of(nb_path: Path) -> str | None:
    "The module a notebook exports to (its `#| default_exp` line), or None."
    for c in json.loads(nb_path.read_text(encoding="utf-8"))["cells"]:
        if c["cell_type"] == "code" and (m := re.search(r"^#\|\s*default_exp\s+(\S+)", "".join(c["source"]), re.M)): return m.group(1)
    return None


def _signature(node) -> str:
    args = ast.unparse(node.args)
    ret = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"{node.name}({args}){ret}"


def _entry(node) -> str:
    "HTML for one function or class: a heading, its signature, its docstring (and a class's public methods)."
    doc = ast.get_docstring(node) or ""
    if isinstance(node, ast.ClassDef):
        init = next((n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "__init__"), None)
        bases = ", ".join(ast.unparse(b) for b in node.bases)
        sig = f"class {node.name}" + (f"({bases})" if bases else "")
        if init: sig += "\n    " + _signature(init).replace("__init__(self, ", "__init__(").replace("__init__(self)", "__init__()")
        out = f"<pre><code>{html.escape(sig)}</code></pre>\n<p>{html.escape(doc)}</p>\n"
        for m in node.body:
            if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and not m.name.startswith("_"):
                out += f"<pre><code>{html.escape(node.name + '.' + _signature(m))}</code></pre>\n<p>{html.escape(ast.get_docstring(m) or '')}</p>\n"
    else:
        out = f"<pre><code>{html.escape(_signature(node))}</code></pre>\n<p>{html.escape(doc)}</p>\n"
    return f'<h3 id="api-{node.name}"><code>{node.name}</code></h3>\n' + out


def api_html(module: str) -> str:
    "The API section of `medvqa.<module>`: every name in its `__all__`, in source order."
    src = ROOT / "medvqa" / (module.replace(".", "/") + ".py")
    tree = ast.parse(src.read_text(encoding="utf-8"))
    public = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                   and any(getattr(t, "id", None) == "__all__" for t in n.targets)), [])
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name in public]
    if not defs: return ""
    return (f'<h2 id="api">API: <code>medvqa.{module}</code></h2>\n'
            + "".join(_entry(n) for n in defs))


def on_page_content(html_text, page, config, files):
    src = Path(page.file.abs_src_path or "")
    if src.suffix != ".ipynb": return html_text
    module = _module_of(src)
    return html_text + api_html(module) if module else html_text


def on_post_build(config):
    "Images the home page (README's opening) shows from outside nbs/."
    site = Path(config["site_dir"])
    for rel in ("reports/screenshot.png",):
        if (ROOT / rel).is_file():
            (site / rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy(ROOT / rel, site / rel)


def sync_index(root: Path = ROOT) -> bool:
    "Rewrite nbs/index.ipynb from README.md's opening (one markdown cell per section, then the existing closing note); True if it changed."
    readme = (root / "README.md").read_text(encoding="utf-8")
    opening = readme[:readme.index("## What the runs show")].strip()
    parts = re.split(r"\n(?=## )", opening)
    path = root / "nbs" / "index.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    new = []
    for i, text in enumerate(parts):
        c = dict(nb["cells"][i]) if i < len(nb["cells"]) - 1 else {"cell_type": "markdown", "id": f"{i:08x}", "metadata": {}}
        lines = text.strip().split("\n")
        c["source"] = [l + "\n" for l in lines[:-1]] + [lines[-1]]
        new.append(c)
    new.append(nb["cells"][-1])
    if new == nb["cells"]: return False
    nb["cells"] = new
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


if __name__ == "__main__":                 # `python docs/hooks.py`: nbs/index.ipynb from README.md (make export runs it)
    print("nbs/index.ipynb updated" if sync_index() else "nbs/index.ipynb already matches README.md")
