"""Import-only torchvision.transforms.functional stub (see torchvision/_stub.py)."""

from torchvision._stub import InterpolationMode  # noqa: F401
from torchvision._stub import stub as _stub

pil_to_tensor = _stub(__name__, "pil_to_tensor")
to_tensor = _stub(__name__, "to_tensor")


def __getattr__(name):
    return _stub(__name__, name)
