"""The report as a person sees it: index.html opened in real headless Chromium, failing on console messages
(a blocked resource, a CSP violation, a script error) and on images that do not render; saves a screenshot.

Also a command for the README's screenshot of a real report:
    python tests/test_browser.py reports/RUN/index.html reports/screenshot.png
CI sets MEDVQA_BROWSER=required so that a missing Chromium fails instead of skipping."""
import json, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "chrome")) if p), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio", "--disable-extensions"]

# Injected into a copy of the page only (the report itself has no script): after load, record how many images
# there are and which of them did not render, as attributes of <body> that --dump-dom shows.
CHECK = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.getAttribute('src') || '').slice(0, 60));
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-broken', JSON.stringify(bad));
  document.body.setAttribute('data-width', String(document.documentElement.scrollWidth) + 'x' + String(window.innerWidth));
  const dds = [...document.querySelectorAll('.card dd')].map(d => Math.round(d.getBoundingClientRect().width));
  document.body.setAttribute('data-answer-width', String(dds.length ? Math.min(...dds) : -1));
});</script>"""


def chromium(args, profile, timeout=120):
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def console_lines(stderr: str) -> list[str]:
    "Messages the page logged to the console (Chromium prints them as ...:CONSOLE(...)] or :CONSOLE:N] lines)."
    return [l for l in stderr.splitlines() if re.search(r":CONSOLE[(:]", l)]


def check_page(html: Path, screenshot: Path, width=1280, height=2600) -> dict:
    "Open `html` in Chromium: console messages, image count, broken images; writes `screenshot`."
    html = Path(html).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shot = chromium([f"--window-size={width},{height}", f"--screenshot={Path(screenshot).resolve()}", html.as_uri()], tmp / "p1")
        page = html.read_text(encoding="utf-8")
        probe = page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
        probe = probe.replace("default-src &#39;none&#39;;", "default-src &#39;none&#39;; script-src &#39;unsafe-inline&#39;;", 1)
        probe = probe.replace("</body>", CHECK + "</body>", 1)
        copy = html.with_name(f".probe-{os.getpid()}.html")        # same folder: relative links resolve alike
        copy.write_text(probe, encoding="utf-8")
        try: dom = chromium([f"--window-size={width},{height}", "--dump-dom", copy.as_uri()], tmp / "p2")
        finally: copy.unlink()
    m = re.search(r'<body[^>]*data-images="(\d+)"[^>]*data-broken="([^"]*)"', dom.stdout)
    w = re.search(r'data-width="(\d+)x(\d+)"', dom.stdout)
    return {"returncode": (shot.returncode, dom.returncode), "console": console_lines(shot.stderr),
            "probe_console": console_lines(dom.stderr),
            "images": int(m.group(1)) if m else None,
            "broken": json.loads(m.group(2).replace("&quot;", '"')) if m else None,
            "scroll_width": int(w.group(1)) if w else None, "window_width": int(w.group(2)) if w else None,
            "answer_width": int(a.group(1)) if (a := re.search(r'data-answer-width="(-?\d+)"', dom.stdout)) else None}


needs_browser = pytest.mark.skipif(CHROMIUM is None and os.environ.get("MEDVQA_BROWSER") != "required",
                                   reason="Chromium not installed (apt-get install chromium)")


@needs_browser
def test_report_in_chromium(tmp_path):
    from medvqa.report import write_report
    from medvqa.testing import example_run
    html = write_report(example_run(tmp_path / "demo"))
    shot = tmp_path / "screenshot.png"
    r = check_page(html, shot)
    assert r["returncode"] == (0, 0)
    assert r["console"] == [], r["console"]
    assert r["probe_console"] == [], r["probe_console"]
    assert r["images"] is not None and r["images"] >= 3 + 6, r   # figures + gallery thumbnails
    assert r["broken"] == [], r["broken"]
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert r["scroll_width"] is not None and r["scroll_width"] <= r["window_width"] <= 1280, r   # no horizontal scrolling


@needs_browser
def test_ablation_report_fits_1280(tmp_path):
    "Six runs, curves and the all-metrics table: still no horizontal scrolling in a 1,280-pixel window."
    from medvqa.report import write_report
    from medvqa.testing import example_run
    from medvqa.core import atomic_write_json
    run = example_run(tmp_path / "abl", models=("tiny-a",), curricula=("open_then_closed", "closed_only", "mixed"), seeds=(0, 1))
    for d in run.iterdir():
        if d.is_dir() and (d / "metrics.json").exists():
            atomic_write_json(d / "curve.json", [{"step": s, "closed_accuracy": 0.5, "open_exact_match": 0.1, "n": 6} for s in (0, 10, 20)])
    r = check_page(write_report(run), tmp_path / "s.png")
    assert r["console"] == [] and r["broken"] == [], r
    assert r["scroll_width"] <= r["window_width"] <= 1280, r


@needs_browser
def test_gallery_answers_readable_with_long_run_names(tmp_path):
    "Gallery cards with long run names: every answer keeps most of its card's width (a name sits above its answer)."
    from medvqa.report import write_report
    from medvqa.testing import example_run
    run = example_run(tmp_path / "abl", models=("tiny-a",), curricula=("open_then_closed", "closed_only", "mixed"), seeds=(0, 1))
    for i, d in enumerate(sorted(x for x in run.iterdir() if x.is_dir())):
        d.rename(d.with_name(f"{d.name}.a-very-long-run-label-for-ablation-number-{i}"))
    r = check_page(write_report(run), tmp_path / "s.png", width=900)
    assert r["console"] == [] and r["broken"] == [], r
    assert r["answer_width"] is not None and r["answer_width"] >= 180, r


@needs_browser
def test_browser_check_catches_problems(tmp_path):
    "The check can fail: an external image, a broken one and a script error are all caught."
    html = tmp_path / "bad.html"
    html.write_text("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                    "img-src data:; style-src 'unsafe-inline'\"></head><body><img src=\"https://example.org/x.png\">"
                    "<img src=\"data:image/png;base64,AAAA\"><script>undefined_function()</script></body></html>")
    r = check_page(html, tmp_path / "s.png")
    assert len(r["console"]) >= 2                          # the CSP-blocked image and the blocked inline script
    assert r["images"] == 2 and len(r["broken"]) == 2


if __name__ == "__main__":                                 # python tests/test_browser.py REPORT.html SCREENSHOT.png
    if CHROMIUM is None: sys.exit("chromium not found")
    res = check_page(Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps(res, indent=1))
    sys.exit(0 if not res["console"] and not res["broken"] and res["images"] else 1)
