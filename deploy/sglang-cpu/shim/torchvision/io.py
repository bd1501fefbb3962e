"""Import-only torchvision.io stub (see _stub.py)."""

from torchvision._stub import stub as _stub

decode_jpeg = _stub(__name__, "decode_jpeg")


def __getattr__(name):
    return _stub(__name__, name)
