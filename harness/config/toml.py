"""Reading TOML into validated data: every error names ``file: table.key``."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.files import read_utf8

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["load_toml", "TableReader", "MISSING", "fmt_number"]

MISSING: Any = object()

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list", dict: "a table"}


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a missing file or bad syntax is a one-line ConfigError."""
    try:
        text = read_utf8(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:  # not UTF-8: which byte, on which line
        raise ConfigError(f"{path}: {exc}: TOML files are UTF-8") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def type_name(types: tuple[type, ...]) -> str:
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)


def check_type(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


class TableReader:
    """Takes keys out of one TOML table; :meth:`done` refuses any key left over."""

    def __init__(self, data: Any, file: Path | str, prefix: str = "") -> None:
        self.file = file
        self.prefix = prefix
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: {prefix.rstrip('.') or 'top level'}: expected a table, got {_show(data)}")
        self.data = data
        self.seen: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.file}: {self.prefix}{key}"

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where(key)}: {message}")

    def get(self, key: str, types: type | tuple[type, ...], default: Any = MISSING, choices: tuple[Any, ...] | None = None) -> Any:
        self.seen.add(key)
        if not isinstance(types, tuple):
            types = (types,)
        if key not in self.data:
            if default is MISSING:
                raise ConfigError(f"{self.where(key)}: missing (required)")
            return default
        value = self.data[key]
        if not check_type(value, types):
            raise self.error(key, f"expected {type_name(types)}, got {_show(value)}")
        if choices is not None and value not in choices:
            raise self.error(key, f"must be one of {', '.join(map(str, choices))}, not {value!r}")
        return value

    def number(self, key: str, default: Any = MISSING, *, integer: bool = False, above: float | None = None,
               least: float | None = None, most: float | None = None, unit: str = "") -> Any:
        """A number (an integer with ``integer``) that is finite and within bounds: ``> above``, ``>= least``,
        ``<= most``; each failure one line naming the key, the bound and the value given (``unit`` after it)."""
        value = self.get(key, int if integer else (int, float), default)
        if value is default and not isinstance(value, (int, float)):
            return value
        after = f" {unit}" if unit else ""
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(key, f"must be a finite number, not {value}")
        if above is not None and not value > above:
            raise self.error(key, f"must be > {fmt_number(above)}{after}, not {fmt_number(value)}")
        if least is not None and value < least:
            raise self.error(key, f"must be >= {fmt_number(least)}{after}, not {fmt_number(value)}")
        if most is not None and value > most:
            raise self.error(key, f"must be <= {fmt_number(most)}{after}, not {fmt_number(value)}")
        return value

    def str_list(self, key: str, default: Any = MISSING) -> list[str]:
        value = self.get(key, list, default)
        if value is default:
            return value
        for item in value:
            if not isinstance(item, str):
                raise self.error(key, f"expected a list of strings, got an item {_show(item)}")
        return list(value)

    def table(self, key: str, required: bool = False) -> TableReader:
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.where(key)}: missing (required table)")
            return TableReader({}, self.file, f"{self.prefix}{key}.")
        return TableReader(self.data[key], self.file, f"{self.prefix}{key}.")

    def rest(self) -> dict[str, Any]:
        """Every key not taken yet (for open-ended tables such as backend settings)."""
        out = {k: v for k, v in self.data.items() if k not in self.seen}
        self.seen.update(out)
        return out

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            known = ", ".join(sorted(self.seen)) or "none"
            raise ConfigError(f"{self.where(unknown[0])}: unknown key (known here: {known})")


def fmt_number(value: float) -> str:
    """A number as a message shows it: integers whole (``1000000``), others shortest (``0.5``, ``1e+300``)."""
    if isinstance(value, int) or (math.isfinite(value) and value == int(value) and abs(value) < 1e15):
        return str(int(value))
    return f"{value:g}"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
