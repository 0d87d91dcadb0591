"""How one setting is declared and parsed: its flag, its `IXC_*` variable, and the value parsers.

`config.OPTIONS` lists the settings; each parser raises `ValueError` with the reason, which `parse_settings`
turns into a `ConfigError` naming the flag or variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes from `123`, `200MB`, `1.5G` (binary units: 1 MB = 1024 * 1024 bytes)."""
    match = _SIZE_RE.match(text.lower())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"'{text}' is not a size; write it like 200MB or 10GB")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def format_size(n: int) -> str:
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"{value} is not a positive integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError(f"{value} is not a positive number")
    return value


def keys(text: str) -> tuple[str, ...]:
    return tuple(key.strip() for key in text.split(",") if key.strip())


def paths(values: str | list[str]) -> tuple[Path, ...]:
    """Folders from a repeated flag, each of which may also be a list joined by the OS path separator."""
    items = [values] if isinstance(values, str) else values
    return tuple(Path(part).expanduser() for item in items for part in item.split(os.pathsep) if part.strip())


def optional_path(text: str) -> Path | None:
    """A path, or none for an empty value (an `IXC_*` variable set to '' unsets its setting)."""
    return Path(text).expanduser() if text.strip() else None


def port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a TCP port (1-65535)")
    return value


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]

    def __call__(self, text: str) -> str:
        value = text.strip().lower()
        if value not in self.options:
            raise ValueError(f"'{text}' is not one of {', '.join(self.options)}")
        return value


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"'{text}' is not a boolean (use 1/0, true/false, yes/no, on/off)")


@dataclass(frozen=True)
class Option:
    """One setting: its flag, its environment variable, how to parse it, where it goes in `Settings`."""

    flag: str
    dest: str
    parse: Callable[[str], Any]
    help: str
    shown_default: str
    metavar: str | None = None
    is_flag: bool = False
    action: str = "store"

    @property
    def env(self) -> str:
        return "IXC_" + self.flag.removeprefix("--").replace("-", "_").upper()
