"""One locked environment: requirements.lock (written by `make lock`) pins every package of the CPU install, the dev
extra included, and `make install` puts exactly it into .venv. These tests fail when pyproject.toml and the lock
disagree, or when the .venv they run in is not the lock; each check is also run on a deliberately broken copy.

`python tests/test_lock.py --stamp requirements.lock` writes the lock's digest line (`make lock` runs it); this part
uses the standard library only, so it runs before anything is installed."""
import hashlib, json, re, sys, tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
DIGEST_LINE = "# pyproject.toml dependencies + dev extra, sha256: "
NOT_LOCKED = ("medvqa-lab", "pip", "uv")      # medvqa itself (editable, no deps) and the tools that install the lock
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", re.M)


def canon(name: str) -> str:
    "A distribution name as the package index compares names (PEP 503)."
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(pyproject_text: str) -> list[str]:
    "The requirements the lock is compiled from: pyproject's [project] dependencies, then its dev extra."
    p = tomllib.loads(pyproject_text)["project"]
    return list(p["dependencies"]) + list(p["optional-dependencies"]["dev"])


def pyproject_digest(pyproject_text: str) -> str:
    "sha256 of the two dependency lists the lock is compiled from; order and spaces within them, comments, the other\n    extras and the rest of pyproject.toml play no part."
    p = tomllib.loads(pyproject_text)["project"]
    lists = {k: sorted(re.sub(r"\s+", "", r) for r in v)
             for k, v in (("dependencies", p["dependencies"]), ("dev", p["optional-dependencies"]["dev"]))}
    return hashlib.sha256(json.dumps(lists, sort_keys=True).encode()).hexdigest()


def stamp(lock_path: Path, pyproject_path: Path = PYPROJECT) -> str:
    "Write (or replace) the lock's digest line, right under uv's header comment; returns the digest."
    digest = pyproject_digest(pyproject_path.read_text(encoding="utf-8"))
    lines = [l for l in lock_path.read_text(encoding="utf-8").splitlines(keepends=True) if not l.startswith(DIGEST_LINE)]
    i = 0
    while i < len(lines) and lines[i].startswith("#"): i += 1
    lines.insert(i, DIGEST_LINE + digest + "\n")
    lock_path.write_text("".join(lines), encoding="utf-8")
    return digest


def pins(lock_text: str) -> dict:
    "{name: version} of every `name==version` line of a lock."
    return {canon(n): v for n, v in _PIN.findall(lock_text)}


def unsatisfied(requirements: list[str], locked: dict) -> list[str]:
    "Each requirement the lock lacks or pins to a version outside its range."
    from packaging.requirements import Requirement
    from packaging.version import Version
    out = []
    for r in requirements:
        req = Requirement(r)
        if req.marker and not req.marker.evaluate({"extra": "dev"}): continue
        have = locked.get(canon(req.name))
        if have is None: out.append(f"{r}: not in requirements.lock")
        elif not req.specifier.contains(Version(have), prereleases=True): out.append(f"{r}: requirements.lock pins {have}")
    return out


def stale(pyproject_text: str, lock_text: str) -> list[str]:
    "Why the lock was not compiled from this pyproject.toml (its digest line is missing or names other lists), if so."
    m = re.search("^" + re.escape(DIGEST_LINE) + r"([0-9a-f]{64})$", lock_text, re.M)
    if not m: return ["requirements.lock has no pyproject digest line: run `make lock`"]
    if m[1] != pyproject_digest(pyproject_text):
        return ["requirements.lock was compiled from other dependency lists than pyproject.toml's: run `make lock`"]
    return []


def not_cpu(locked: dict, torch_pin: str) -> list[str]:
    "Why the lock is not the CPU install: torch other than the Makefile's CPU wheel, CUDA packages."
    out = [f"requirements.lock has {n}=={v}: a CUDA package" for n, v in locked.items() if n.startswith(("nvidia-", "triton"))]
    if f"torch=={locked.get('torch')}" != torch_pin: out.append(f"requirements.lock has torch=={locked.get('torch')}, the Makefile {torch_pin}")
    return out


def drift(installed: dict, locked: dict, not_locked=NOT_LOCKED) -> list[str]:
    "How an installed set differs from the lock: packages missing, at other versions, or not in the lock."
    from packaging.version import Version
    installed = {canon(k): v for k, v in installed.items() if canon(k) not in not_locked}
    out = [f"{n}=={v} is locked but not installed" for n, v in sorted(locked.items()) if n not in installed]
    out += [f"{n} {installed[n]} is installed, the lock has {v}" for n, v in sorted(locked.items())
            if n in installed and Version(installed[n]) != Version(v)]
    out += [f"{n}=={v} is installed but not in the lock" for n, v in sorted(installed.items()) if n not in locked]
    return out


def makefile_var(name: str) -> str:
    m = re.search(rf"^{name}\s*\??:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert m, f"Makefile sets no {name}"
    return m[1]


# ---------------------------------------------------------------------------------------------------------------
if __name__ != "__main__":                    # under pytest; `--stamp` runs before there is a lock to read
    _pyproject, _lock = PYPROJECT.read_text(encoding="utf-8"), LOCK.read_text(encoding="utf-8")


def test_lock_pins_exact_versions():
    "Every package line of the lock is `name==version` (with hashes); nothing is left open."
    locked = pins(_lock)
    assert len(locked) > 100 and {"torch", "transformers", "trl", "datasets", "peft", "numpy"} <= set(locked)
    entries = [l for l in _lock.splitlines() if l and not l[0].isspace() and not l.startswith("#")]
    assert len(entries) == len(locked), [l for l in entries if not _PIN.match(l)]
    assert _lock.count("--hash=sha256:") >= len(locked)


def test_lock_satisfies_pyproject():
    "(a) Each requirement of pyproject's dependencies and dev extra holds for the version the lock pins."
    locked = pins(_lock)
    assert unsatisfied(declared(_pyproject), locked) == []
    broken = dict(locked, transformers="5.16.0"); del broken["peft"]
    test = unsatisfied(declared(_pyproject), broken)
    assert test == ["transformers==5.17.0: requirements.lock pins 5.16.0", "peft>=0.17: not in requirements.lock"], test


def test_lock_compiled_from_this_pyproject():
    "(b) The lock's digest line names pyproject's current dependency lists (`make lock` writes it)."
    assert stale(_pyproject, _lock) == []
    added = _pyproject.replace('"safetensors",', '"safetensors",\n    "rich",')
    assert added != _pyproject and stale(added, _lock), "a new dependency must make the lock stale"
    dev = _pyproject.replace('"pytest>=8",', '"pytest>=9",')
    assert dev != _pyproject and stale(dev, _lock), "a changed dev requirement must make the lock stale"
    assert stale(_pyproject, "".join(l for l in _lock.splitlines(True) if not l.startswith(DIGEST_LINE)))
    other = _pyproject.replace('tensorboard = ["tensorboard"]', 'tensorboard = ["tensorboard>=2"]').replace("# torch is", "#  torch is")
    assert other != _pyproject and stale(other, _lock) == [], "the gpu/tensorboard extras and comments are not locked"


def test_stamp(tmp_path):
    "`make lock`'s stamp writes one digest line under uv's header, and rewriting it changes nothing else."
    body = "".join(l for l in _lock.splitlines(True) if not l.startswith(DIGEST_LINE))
    (tmp_path / "r.lock").write_text(body)
    stamp(tmp_path / "r.lock"); stamp(tmp_path / "r.lock")
    text = (tmp_path / "r.lock").read_text()
    assert text == _lock and text.count(DIGEST_LINE) == 1 and stale(_pyproject, text) == []


def test_lock_is_cpu():
    "The lock holds the CPU torch wheel the Makefile names and no CUDA packages."
    torch_pin = makefile_var("TORCH")
    assert torch_pin.endswith("+cpu")
    assert not_cpu(pins(_lock), torch_pin) == []
    broken = dict(pins(_lock), torch="2.13.0", **{"nvidia-cublas-cu12": "12.8.4.1"})
    assert not_cpu(broken, torch_pin) == ["requirements.lock has nvidia-cublas-cu12==12.8.4.1: a CUDA package",
                                          f"requirements.lock has torch==2.13.0, the Makefile {torch_pin}"]


def test_drift_names_each_difference():
    "(c)'s check on a broken copy of an installed set: one missing, one at another version, one not locked."
    locked = pins(_lock)
    assert drift(dict(locked, **{"medvqa-lab": "0.1"}, pip="23.2", uv="0.13.8"), locked) == []
    installed = dict(locked, numpy="1.26.4", unsloth="2026.10.9"); del installed["torch"]
    assert drift(installed, locked) == [f"torch=={locked['torch']} is locked but not installed",
                                        f"numpy 1.26.4 is installed, the lock has {locked['numpy']}",
                                        "unsloth==2026.10.9 is installed but not in the lock"]


def test_venv_is_the_lock():
    "(c) The .venv these tests run in (`make install`) holds exactly the locked packages, plus medvqa and the pinned uv."
    import pytest
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip(f"runs in {sys.prefix}, not this checkout's .venv (make install)")
    from medvqa.core import installed_distributions
    installed = installed_distributions()
    assert drift(installed, pins(_lock)) == []
    assert installed.get("uv") == makefile_var("UV_VERSION"), installed.get("uv")
    assert "nvidia" not in " ".join(installed)


if __name__ == "__main__":
    if sys.argv[1:2] != ["--stamp"] or len(sys.argv) != 3: sys.exit("usage: python tests/test_lock.py --stamp requirements.lock")
    print(f"{sys.argv[2]}: pyproject digest {stamp(Path(sys.argv[2]))[:16]}")
