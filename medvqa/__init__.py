"""medvqa: fine-tune Qwen-VL models with LoRA for medical VQA and measure which training recipe works best.

The main entry points are importable from `medvqa` itself. Each loads its module (and with it torch, transformers
or datasets) on first use, so `import medvqa` stays cheap:

- data: `load_vqa`, `detect_format`, `data_stats`, `drop_duplicates`, `drop_leakage`, `open_image`, `prepare_image`
- recipes and models: `make_stages`, `get_spec`
- training and evaluation: `medvqa.train(...)` and `medvqa.evaluate(...)` (the modules `medvqa.train` and
  `medvqa.evaluate`, named after them, are callable and call them; `from medvqa.train import train` works too),
  `score`, and `Specialist(model=..., adapter=...)`, the inference API for agents
- runs: `run_models`, `ablate`, `write_report`

`medvqa.testing` holds the project's test helpers; the command line is `medvqa --help` (`medvqa.cli`).
"""
__version__ = "0.1.0"

import sys as _sys
from importlib import import_module as _import_module
from types import ModuleType as _ModuleType

_LAZY = {"load_vqa": "data", "detect_format": "formats", "data_stats": "hygiene", "drop_duplicates": "hygiene",
         "drop_leakage": "hygiene", "open_image": "images", "prepare_image": "images", "make_stages": "curriculum",
         "get_spec": "models", "score": "metrics", "Specialist": "evaluate", "run_models": "run", "ablate": "run",
         "write_report": "report"}

_CALLABLE = ("train", "evaluate")       # modules named after their function: calling the module calls it


class _CallableModule(_ModuleType):
    "`medvqa.train(...)` is `medvqa.train.train(...)`, whether or not the module was imported first."
    def __call__(self, *args, **kwargs): return getattr(self, self.__name__.rsplit(".", 1)[1])(*args, **kwargs)

    @property
    def __signature__(self):
        import inspect
        return inspect.signature(getattr(self, self.__name__.rsplit(".", 1)[1]))


class _Package(_ModuleType):
    "The package: its submodules `train` and `evaluate` become callable as the import system attaches them."
    def __setattr__(self, name, value):
        if name in _CALLABLE and isinstance(value, _ModuleType) and type(value) is _ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def __getattr__(name):
    if name in _CALLABLE: return _import_module(f"{__name__}.{name}")
    if name in _LAZY: return getattr(_import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'medvqa' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY, *_CALLABLE})
