"""The comparison report on a run folder written by hand in the contract's shapes (no other medvqa module involved):
untrusted text escaped, failures shown, images embedded, nothing external, odd or missing files tolerated."""
import base64, io, json, re
from pathlib import Path

from PIL import Image

from medvqa.report import write_report
from medvqa.results import load_run

PNG = "data:image/png;base64," + base64.b64encode((lambda b: (Image.new("L", (8, 8), 200).save(b, "PNG"), b.getvalue())[1])(io.BytesIO())).decode()


def _metrics(acc, lo, hi, open_n=2):
    m = {"n": 4, "exact_match": 0.5,
         "closed": {"n": 2, "accuracy": acc, "precision": 1.0, "recall": 0.5, "f1": 0.67, "invalid": 0.0},
         "open": {"n": open_n, "recall": 0.5 if open_n else None, "token_f1": 0.4 if open_n else None,
                  "exact_match": 0.5 if open_n else None},
         "llava_med": {"closed_accuracy": 0.9, "open_recall": 0.6 if open_n else None},
         "ci": {"exact_match": [0.1, 0.9], "closed.accuracy": [lo, hi], "open.recall": [0.0, 1.0] if open_n else None}}
    m["by_source"] = {"vqa-rad": {k: v for k, v in m.items()}, "slake": {k: v for k, v in m.items()}}
    return m


def _write(d: Path, name, obj):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(obj if isinstance(obj, str) else json.dumps(obj))


def make_run(root: Path) -> Path:
    run = root / "RUN"
    samples = [("q1", "Is there a <i>mass</i>?", "yes", "closed"), ("q2", "Where?", "left lobe", "open")]
    gallery = [{"id": i, "question": q, "answer": a, "answer_type": t, "source": "vqa-rad", "image": PNG} for i, q, a, t in samples]
    for label, acc, pred in [("model-a", 0.75, "yes"), ("model-b", 0.5, "no"),
                             ("model-x", 0.25, '<script>alert("x")</script><img src=x onerror=alert(1)>')]:
        d = run / label
        _write(d, "run.json", {"model": label, "curriculum": "open_then_closed", "seed": 0, "status": "ok", "error": None,
                               "traceback": None, "notebook": "train.ipynb", "html": "train.html", "params": {"model": label}})
        _write(d, "train.html", "<html></html>")
        _write(d, "metrics.json", _metrics(acc, acc - 0.1, acc + 0.1, open_n=0 if label == "model-b" else 2))
        _write(d, "train_summary.json", {"model": label, "backend": "hf", "curriculum": "open_then_closed", "steps": 4, "max_steps": 4,
                                         "stages": [{"stage": "open", "first_step": 1, "last_step": 2}, {"stage": "closed", "first_step": 3, "last_step": 4}],
                                         "wall_s": 12.5, "tokens_per_s": 900.0, "peak_memory_gib": 0.3, "versions": {"torch": "2.13.0"}})
        _write(d, "log_history.json", [{"step": s, "loss": 2.0 / s, "learning_rate": 1e-4, "stage": "open" if s < 3 else "closed"} for s in range(1, 5)]
               + [{"step": 4, "train_loss": 1.0}])
        _write(d, "predictions.jsonl", "".join(json.dumps({"id": i, "question": q, "answer": a, "prediction": pred if i == "q1" else "left",
                                                           "answer_type": t, "source": "vqa-rad"}) + "\n" for i, q, a, t in samples) + "{torn line\n")
        _write(d, "gallery.json", gallery if label != "model-b" else
               [{**g, "image": "http://evil.example/x.png"} for g in gallery])        # never used as an image source
    _write(run / "model-dead", "run.json", {"model": "model-dead", "curriculum": "open_then_closed", "seed": 0, "status": "failed",
                                            "error": "OutOfMemoryError: CUDA out of memory <GPU 0>",
                                            "traceback": "Traceback (most recent call last):\n  File \"<cell 4>\"\nOutOfMemoryError",
                                            "notebook": "train.ipynb", "html": "train.html", "params": {}})
    _write(run / "model-dead", "train.html", "<html></html>")
    _write(run / "half-done", "train_summary.json", {"model": "half-done", "steps": 2})     # no run.json, no metrics
    (run / "not-a-run").mkdir()
    return run


def test_report_from_hand_written_run(tmp_path):
    run = make_run(tmp_path)
    entries = {e["label"]: e for e in load_run(run)}
    assert sorted(entries) == ["half-done", "model-a", "model-b", "model-dead", "model-x"]
    assert entries["half-done"]["status"] == "incomplete" and entries["model-dead"]["status"] == "failed"
    h = write_report(run).read_text()

    # untrusted text is escaped: no markup from questions or predictions survives
    assert "<script" not in h.lower()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in h
    assert "Is there a &lt;i&gt;mass&lt;/i&gt;?" in h and "<i>mass</i>" not in h
    assert not re.search(r"<img[^>]*onerror", h, re.I)

    # failures and unfinished runs are shown, with error and traceback
    assert "CUDA out of memory &lt;GPU 0&gt;" in h and "File &#34;&lt;cell 4&gt;&#34;" in h
    assert re.search(r"half-done.*incomplete", h, re.S)
    assert "predictions.jsonl: 1 unreadable line(s) skipped" in h

    # every image is an embedded PNG; nothing is loaded from outside
    srcs = re.findall(r'<img [^>]*src="([^"]*)"', h)
    assert len(srcs) == 3 + 2                     # 3 figures (results, per source, loss) + 2 thumbnails
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "evil.example" not in h
    assert not re.search(r'(src|href)="(https?:)?//', h)
    assert "Content-Security-Policy" in h

    # strict metrics first with CIs; lenient ones labelled; an empty group shows a dash
    assert "0.75 [0.65, 0.85]" in h and "(lenient)" in h
    res = h[h.index('id="results"'):]
    head = res[res.index("<thead>"):res.index("</thead>")]
    assert head.index("closed accuracy") < head.index("LLaVA-Med closed accuracy (lenient)")
    assert 'href="model-a/train.html"' in h

    # metrics written before the hallucination and MedEvalKit figures: dashes, and no blind control without its files
    hal = res[res.index('id="hallucination"'):res.index('id="blind"')]
    assert "model-a" in hal and "—" in hal and "0.0" not in hal
    blind = res[res.index('id="blind"'):]
    assert blind.split("</table>")[0].count("not run") == 2 * 3
    assert "MedEvalKit (rule-based)" in head


def test_report_only_failures(tmp_path):
    "A run where every model failed still gives a page (no figures), showing each failure."
    run = tmp_path / "R"
    for m in ("a", "b"):
        _write(run / m, "run.json", {"model": m, "status": "failed", "error": f"boom {m}", "traceback": "tb", "params": {}})
    h = write_report(run).read_text()
    assert "boom a" in h and "boom b" in h and "0 ok" in h
    assert 'href="#failures"' in h and 'href="#gallery"' not in h


def test_gallery_long_run_names(tmp_path):
    "A run name, however long, sits on its own line above its answer: the card's list is not a grid with a name column."
    run = make_run(tmp_path)
    long = "model-a.open_then_closed.s0.with-a-very-long-label-that-would-take-the-whole-card"
    (run / "model-a").rename(run / long)
    h = write_report(run).read_text()
    css = re.search(r"<style>(.*?)</style>", h, re.S).group(1)
    dl = re.search(r"\.card dl\{([^}]*)\}", css).group(1)
    assert "grid" not in dl, dl
    assert "overflow-wrap:anywhere" in re.search(r"\.card dt\{([^}]*)\}", css).group(1)
    gal = h[h.index('id="gallery"'):]
    card = gal[gal.index('<div class="card">'):gal.index("</dl>")]
    assert re.search(r"<dt>" + re.escape(long) + r"</dt><dd class=\"(hit|miss)\">", card), card   # the name, then its answer


def _tiny_run(root: Path, data: str) -> Path:
    run = root / "RUN"; d = run / "tiny-qwen2vl"
    _write(d, "run.json", {"model": "tiny-qwen2vl", "status": "ok", "params": {}})
    _write(d, "metrics.json", _metrics(0.75, 0.65, 0.85))
    _write(d, "train_summary.json", {"model": "tiny-qwen2vl", "data": data, "steps": 4, "method": "full"})
    _write(d, "eval_summary.json", {"data": data.split(" (")[0], "split": "test"})
    rows = [{"id": f"q{i}", "question": "Is there a mass?", "answer": "yes", "prediction": "yes" if i % 3 else "no", "answer_type": "closed",
             "source": "slake", "organ": ("lung", "brain")[i % 2], "modality": ("CT", "MRI", "X-Ray")[i % 3], "question_text": f"free {i}"}
            for i in range(12)]
    _write(d, "predictions.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_synthetic_notice_only_on_demo_data(tmp_path):
    from medvqa.core import package_dir
    demo = f"{package_dir() / 'fixtures' / 'demo'} (the shipped demo data)"
    assert "shipped synthetic scans" in write_report(_tiny_run(tmp_path / "demo", demo)).read_text()
    h = write_report(_tiny_run(tmp_path / "mine", str(tmp_path / "my-slake"))).read_text()
    assert "shipped synthetic scans" not in h and "random-weight model(s)" in h


def test_results_by_category(tmp_path):
    "Category columns of the prediction rows (here SLAKE's organ and modality) get a table each; free text does not."
    h = write_report(_tiny_run(tmp_path, str(tmp_path / "my-slake"))).read_text()
    assert 'id="by-organ"' in h and 'id="by-modality"' in h and 'id="by-question_text"' not in h
    organ = h[h.index('id="by-organ"'):]; organ = organ[:organ.index("</table>")]
    assert ">brain</th>" in organ and ">lung</th>" in organ and "n 6" in organ
    assert re.search(r"<td>tiny-qwen2vl</td>(<td class=\"num\">[^<]*(<br><span class=\"ci\">[^<]*</span>)*</td>){4}</tr>", organ), organ
