"The agent-facing API at the package's top level: `medvqa.Specialist(model=...).answer(images, question) -> str`."
import os, subprocess, sys


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


def test_top_level_names():
    "`import medvqa` is cheap; the main functions resolve from it on first use."
    code = ("import sys, medvqa; assert 'torch' not in sys.modules and 'datasets' not in sys.modules\n"
            "assert medvqa.__doc__.startswith('medvqa: fine-tune') and medvqa.__version__\n"
            "from medvqa.data import load_vqa; from medvqa.hygiene import data_stats; from medvqa.evaluate import Specialist\n"
            "assert (medvqa.load_vqa, medvqa.data_stats, medvqa.Specialist) == (load_vqa, data_stats, Specialist)\n"
            "assert set(['load_vqa', 'Specialist', 'write_report']) <= set(dir(medvqa))\n"
            "try: medvqa.no_such_name\n"
            "except AttributeError: pass\n"
            "else: raise AssertionError('no AttributeError')\n")
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
           **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr[-2000:]


def test_train_evaluate_data_stats_take_what_the_command_takes(tmp_path):
    "`medvqa.train(...)`, `medvqa.evaluate(...)` are the functions (their modules are callable); `medvqa.data_stats` reads a path."
    code = ("import inspect, medvqa\n"
            "from medvqa.train import train\n"                          # the module imported first: still callable
            "assert callable(medvqa.train) and callable(medvqa.evaluate)\n"
            "assert 'lang' in inspect.signature(medvqa.train).parameters and 'image_column' in inspect.signature(medvqa.evaluate).parameters\n"
            "from medvqa.synthetic import default_data\n"
            "s = medvqa.data_stats(str(default_data()), split='test')\n"
            "assert s['samples'] > 0 and s['dropped'] == {'split': s['dropped']['split']}\n"
            "from medvqa.testing import write_layout_fixture\n"
            f"g = write_layout_fixture('generic', {str(tmp_path / 'g')!r})\n"
            "assert medvqa.load_vqa(g, split='test')['id'] == ['g-test-00003']\n")   # a test row's id names its split
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
           **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
