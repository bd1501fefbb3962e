"""Shared pieces of the import-only torchvision stub (deploy/sglang-cpu).

PyPI's torchvision does not load beside the CPU build of torch 2.13.0 ("operator
torchvision::nms does not exist"), yet SGLang imports it at startup (multimodal
processors and configs, e.g. `import torchvision.transforms as T`) even when it
serves a text-only model. These modules satisfy those imports; anything actually
used raises, so a vision model fails loudly instead of running wrongly.
"""

import enum


class Unavailable:
    """Base of every stub class: usable in annotations, defaults and subclassing, not at run time."""

    def __init__(self, *args, **kwargs):
        name = f"{type(self).__module__}.{type(self).__name__}"
        raise NotImplementedError(f"{name} is not available: import-only torchvision stub for "
                                  "SGLang on CPU (deploy/sglang-cpu/shim)")


def stub(module, name):
    """A stand-in for `module.name` that raises when called or instantiated."""
    if name.startswith("_"):
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return type(name, (Unavailable,), {"__module__": module})


class InterpolationMode(enum.Enum):  # same members and values as torchvision's
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"
