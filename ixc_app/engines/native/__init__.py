"""The native engine: IXC-2.5 in our own PyTorch code, from the official checkpoint layout or the tiny one.

The model is loaded on first use of `NativeModel` or `KVCache`, so the torch-free `layout` module can be
imported (by the app's settings) without pulling in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ixc_app.engines.native.model import KVCache, NativeModel

__all__ = ["KVCache", "NativeModel"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("ixc_app.engines.native.model"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
