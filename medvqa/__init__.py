__version__ = "0.1.0"

"""medvqa: fine-tune Qwen-VL models with LoRA for medical VQA and measure which training recipe works best.

`medvqa.Specialist(model=..., adapter=...)` is the inference API for agents; heavy libraries load on first use."""


def __getattr__(name):
    if name == "Specialist":
        from .evaluate import Specialist
        return Specialist
    raise AttributeError(f"module 'medvqa' has no attribute {name!r}")
