"""Import-only torchvision stub for SGLang on CPU (see _stub.py)."""

from torchvision import io, transforms  # noqa: F401
from torchvision._stub import stub as _stub

__version__ = "0.0.0+sglang.cpu.stub"


def __getattr__(name):
    return _stub(__name__, name)
