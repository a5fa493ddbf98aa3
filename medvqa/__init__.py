"""medvqa: fine-tune Qwen-VL models with LoRA for medical VQA and measure which training recipe works best.

The main entry points are importable from `medvqa` itself. Each loads its module (and with it torch, transformers
or datasets) on first use, so `import medvqa` stays cheap:

- data: `load_vqa`, `detect_format`, `data_stats`, `drop_duplicates`, `drop_leakage`, `open_image`, `prepare_image`
- recipes and models: `make_stages`, `get_spec`
- training and evaluation: `from medvqa.train import train` and `from medvqa.evaluate import evaluate` (the modules
  `medvqa.train` and `medvqa.evaluate` are named after them), `score`, and `Specialist(model=..., adapter=...)`,
  the inference API for agents
- runs: `run_models`, `ablate`, `write_report`

`medvqa.testing` holds the project's test helpers; the command line is `medvqa --help` (`medvqa.cli`).
"""
__version__ = "0.1.0"

from importlib import import_module as _import_module

_LAZY = {"load_vqa": "data", "detect_format": "data", "data_stats": "hygiene", "drop_duplicates": "hygiene",
         "drop_leakage": "hygiene", "open_image": "images", "prepare_image": "images", "make_stages": "curriculum",
         "get_spec": "models", "score": "metrics", "Specialist": "evaluate", "run_models": "run", "ablate": "run",
         "write_report": "report"}


def __getattr__(name):
    if name in _LAZY: return getattr(_import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'medvqa' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})
