"""medvqa: fine-tune Qwen-VL models with LoRA for medical VQA and measure which training recipe works best.

The main entry points are importable from `medvqa` itself. Each loads its module (and with it torch, transformers
or datasets) on first use, so `import medvqa` stays cheap:

- data: `load_vqa`, `detect_format`, `data_stats`, `drop_duplicates`, `drop_leakage`, `open_image`, `prepare_image`
- recipes and models: `make_stages`, `get_spec`
- training and evaluation: `medvqa.train(model, data=..., output_dir=...)` and `medvqa.evaluate(model, data, ...)`
  (the modules `medvqa.train` and `medvqa.evaluate` are callable and call their main function), `score`,
  and `Specialist(model=..., adapter=...)`, the inference API for agents
- runs: `run_models`, `ablate`, `write_report`

`medvqa.testing` holds the project's test helpers; the command line is `medvqa --help` (`medvqa.cli`).
"""
__version__ = "0.1.0"

import sys as _sys
from importlib import import_module as _import_module
from types import ModuleType as _ModuleType

_LAZY = {"load_vqa": "data", "detect_format": "data", "data_stats": "hygiene", "drop_duplicates": "hygiene",
         "drop_leakage": "hygiene", "open_image": "images", "prepare_image": "images", "make_stages": "curriculum",
         "get_spec": "models", "score": "metrics", "Specialist": "evaluate", "run_models": "run", "ablate": "run",
         "write_report": "report"}
_CALLABLE = ("train", "evaluate")        # submodules named after their main function


class _CallableModule(_ModuleType):
    "A submodule that, called, calls its function of the same name: `medvqa.train(...)` is `medvqa.train.train(...)`."
    def __call__(self, *args, **kwargs):
        return getattr(self, self.__name__.rsplit(".", 1)[-1])(*args, **kwargs)


class _Package(_ModuleType):
    "The `medvqa` package: whenever the import system binds `train` or `evaluate` on it, that module becomes callable."
    def __setattr__(self, name, value):
        if name in _CALLABLE and type(value) is _ModuleType: value.__class__ = _CallableModule
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def __getattr__(name):
    if name in _CALLABLE: return _import_module(f"{__name__}.{name}")
    if name in _LAZY: return getattr(_import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'medvqa' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY, *_CALLABLE})
