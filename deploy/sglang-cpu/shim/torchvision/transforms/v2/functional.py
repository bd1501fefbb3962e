"""Import-only torchvision.transforms.v2.functional stub (see torchvision/_stub.py)."""

from torchvision._stub import InterpolationMode  # noqa: F401
from torchvision._stub import stub as _stub


def __getattr__(name):
    return _stub(__name__, name)
