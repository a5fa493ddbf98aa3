"The agent-facing API at the package's top level: `medvqa.Specialist(model=...).answer(images, question) -> str`."
import subprocess, sys


def test_import_is_light_and_specialist_answers():
    code = ("import sys, medvqa; assert 'torch' not in sys.modules, 'import medvqa must stay light'\n"
            "from medvqa.synthetic import make_synthetic\n"
            "r = make_synthetic(2, seed=0)[0]\n"
            "s = medvqa.Specialist(model='tiny-qwen2vl', max_new_tokens=4)\n"
            "a = s.answer(r['images'], r['question'])\n"
            "assert isinstance(a, str)\n"
            "assert s.answer(r['images'], r['question']) == a   # greedy: the same answer twice\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": __import__("os").environ.get("HOME", "/root")})
    assert p.returncode == 0, p.stderr[-2000:]
