"""Import-only torchvision.transforms.v2 stub (see torchvision/_stub.py)."""

from torchvision._stub import InterpolationMode  # noqa: F401
from torchvision._stub import stub as _stub
from torchvision.transforms.v2 import functional  # noqa: F401


def __getattr__(name):
    return _stub(__name__, name)
