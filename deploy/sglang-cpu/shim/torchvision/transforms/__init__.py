"""Import-only torchvision.transforms stub (see torchvision/_stub.py)."""

from torchvision._stub import InterpolationMode  # noqa: F401
from torchvision._stub import stub as _stub
from torchvision.transforms import functional, v2  # noqa: F401

Normalize = _stub(__name__, "Normalize")
Compose = _stub(__name__, "Compose")


def __getattr__(name):
    return _stub(__name__, name)
