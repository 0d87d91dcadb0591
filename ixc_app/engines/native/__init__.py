"""The native engine: IXC-2.5 in our own PyTorch code, from the official checkpoint layout or the tiny one."""

from ixc_app.engines.native.model import KVCache, NativeModel

__all__ = ["KVCache", "NativeModel"]
