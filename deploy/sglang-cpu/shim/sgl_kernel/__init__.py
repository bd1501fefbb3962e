"""CPU import shim for ``sgl_kernel`` (deploy/sglang-cpu; its folder goes first on PYTHONPATH).

PyPI's sglang-kernel wheel is CUDA-only: its ``__init__`` loads ``common_ops`` (libcuda,
libnvrtc) and fails on a machine without a GPU. SGLang's CPU engine imports names from it
but, with ``--attention-backend torch_native`` and no AMX kernels, never calls them. This
package takes the wheel's place: the wheel's pure-Python submodules load as usual
(``__path__`` points into the wheel), the native library is never loaded, and every name the
wheel's ``__init__`` exports is re-exported, or, where its submodule cannot load, replaced by
a stub that raises when called. The re-exported wrappers call ``torch.ops.sgl_kernel.*``,
which does not exist here, so they raise too if anything calls them. No op is registered, so
SGLang's ``cpu_has_amx_support()`` stays False and it keeps to plain torch.
"""

import ast
import importlib
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_candidates = [os.path.join(p or ".", "sgl_kernel") for p in sys.path]
_real = next((d for d in _candidates if os.path.isfile(os.path.join(d, "load_utils.py"))
              and os.path.abspath(d) != _here), None)
if _real is None:
    raise ImportError("sgl_kernel CPU shim: the sglang-kernel wheel is not installed")
__path__ = [_real]  # sgl_kernel.<submodule> comes from the wheel
common_ops = None  # the native library, never loaded


def _stub(name, why):
    def stub(*args, **kwargs):
        raise NotImplementedError(f"sgl_kernel.{name} is a native op, not available on CPU "
                                  f"(deploy/sglang-cpu shim): {why}")

    stub.__name__ = stub.__qualname__ = name
    return stub


def _export(module, names):
    try:
        mod, why = importlib.import_module(module), "not in its submodule"
    except Exception as e:  # a CUDA-only submodule: stub its names
        mod, why = None, f"{module}: {type(e).__name__}: {e}"
    if names == ["*"]:
        names = [n for n in vars(mod) if not n.startswith("_")] if mod else []
    for n in names:
        globals()[n] = getattr(mod, n) if hasattr(mod, n) else _stub(n, why)


# Re-export what the wheel's __init__ imports from its submodules (Metal/MUSA builds aside).
with open(os.path.join(_real, "__init__.py"), encoding="utf-8") as _f:
    for _node in ast.walk(ast.parse(_f.read())):
        _mod = getattr(_node, "module", None) or ""
        _skip = _mod.split(".")[1:2] in (["metal"], ["musa"], ["load_utils"], ["debug_utils"])
        if isinstance(_node, ast.ImportFrom) and _mod.startswith("sgl_kernel.") and not _skip:
            _export(_mod, [a.name for a in _node.names])
        elif isinstance(_node, ast.FunctionDef) and _node.col_offset > 0:  # its lazy spatial wrappers
            globals()[_node.name] = _stub(_node.name, "green-context op")
