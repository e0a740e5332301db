"""A network as a spec file: the spec's vocabulary written as TOML, readable and editable by hand,
and read back as data (parsed and checked, never executed). The interchange format of a network
that is not one of the built-in variants (python -m parity.port writes one, issue 24).

    format = "lenet-parity spec"
    format_version = 1
    name = "mynet"
    title = "..."
    dataset = "mnist"
    init = "fan-in-uniform"
    classes = ["0", "1", ...]

    [input]
    channels = 1
    height = 28
    width = 28

    [[layers]]
    type = "conv"
    name = "c1"
    in_channels = 1
    ...

Each layer is a table of its layer type's fields (lenet_spec.layers: `type` is the type's `kind`);
a field at its default may be left out. Every mistake is one line naming the layer, the key and
the fix: an unknown key or layer type, a value of the wrong type, sizes that do not chain.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import typing
from pathlib import Path

from . import layers as _layers
from .cli import did_you_mean
from .layers import Input, Layer, Variant

FORMAT = "lenet-parity spec"
FORMAT_VERSION = 1
MAX_BYTES = 1 << 20  # a LeNet's spec is a few KiB
TOP = ("format", "format_version", "name", "title", "dataset", "init", "classes", "input", "layers")


class SpecError(ValueError):
    """A spec file that cannot be read as a network: one line naming the file, the key and the fix."""


def layer_types() -> dict[str, type[Layer]]:
    """type (a layer type's `kind`) -> its class, for every layer type the spec knows but Input."""
    found = {}
    for name in _layers.__all__:
        cls = getattr(_layers, name)
        if isinstance(cls, type) and issubclass(cls, Layer) and cls is not Layer and cls is not Input and dataclasses.is_dataclass(cls):
            found[cls.kind] = cls
    return found


def _fields(cls: type) -> dict[str, tuple[object, object]]:
    """field name -> (its type, its default or MISSING), ClassVars left out."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        )
        out[f.name] = (hints[f.name], default)
    return out


# --- writing ---
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def _table(obj, skip: tuple[str, ...] = ()) -> list[str]:
    lines = []
    for name, (_, default) in _fields(type(obj)).items():
        if name in skip:
            continue
        value = getattr(obj, name)
        if value is None or (default is not dataclasses.MISSING and value == default):
            continue  # TOML has no null; a default is left out
        lines.append(f"{name} = {_toml_value(value)}")
    return lines


def dumps(variant: Variant) -> str:
    """The network as spec-file text; `loads(dumps(v)) == v`."""
    out = [f"# {variant.name}: {variant.title}", f"format = {_toml_value(FORMAT)}", f"format_version = {FORMAT_VERSION}"]
    for key in ("name", "title", "dataset", "init", "classes"):
        out.append(f"{key} = {_toml_value(getattr(variant, key))}")
    out += ["", "[input]", *_table(variant.input)]
    for layer in variant.layers:
        out += ["", "[[layers]]", f"type = {_toml_value(layer.kind)}", *_table(layer)]
    return "\n".join(out) + "\n"


def save(path: str | os.PathLike, variant: Variant) -> None:
    """Write the spec file (whole, then renamed into place)."""
    from .checkpoint import atomic_write

    text = dumps(variant)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


# --- reading ---
def _convert(value, hint, where: str, key: str):
    """`value` (as TOML gave it) as the field's type, or SpecError."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where, key)
    if origin is tuple:
        if not isinstance(value, list):
            raise SpecError(f"{where}: {key} must be a list, not {_shown(value)}")
        item = args[0] if args else object
        return tuple(_convert(v, item, where, key) for v in value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: {key} must be a number, not {_shown(value)}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: {key} must be a whole number, not {_shown(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise SpecError(f"{where}: {key} must be a string, not {_shown(value)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{where}: {key} must be true or false, not {_shown(value)}")
        return value
    return value


def _shown(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _build(cls: type, table: dict, where: str, skip: tuple[str, ...] = ()):
    fields = _fields(cls)
    allowed = [k for k in fields if k not in skip]
    for key in table:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f"; {getattr(cls, 'kind', cls.__name__)} takes {', '.join(allowed)}"
            raise SpecError(f"{where}: unknown key {key!r}{hint}")
    missing = [k for k, (_, default) in fields.items() if default is dataclasses.MISSING and k not in table and k not in skip]
    if missing:
        raise SpecError(f"{where}: missing {', '.join(repr(k) for k in missing)}; a {cls.kind} layer needs {', '.join(missing)}")
    kwargs = {k: _convert(v, fields[k][0], where, k) for k, v in table.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise SpecError(f"{where}: {e}") from None


def loads(text: str, where: str = "<spec>") -> Variant:
    """A spec file's text as a Variant, every key and size checked.

    Raises:
        SpecError: one line naming `where`, the layer and key, and the fix.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{where}: not a TOML file ({e})") from None
    if doc.get("format") != FORMAT:
        raise SpecError(f"{where}: not a lenet-parity spec (its first keys must be format = {FORMAT!r} and format_version = {FORMAT_VERSION})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise SpecError(f"{where}: spec format_version {_shown(doc.get('format_version'))} is not {FORMAT_VERSION}")
    for key in doc:
        if key not in TOP:
            raise SpecError(f"{where}: unknown key {key!r} at the top{did_you_mean(key, TOP) or '; a spec has ' + ', '.join(TOP)}")
    for key, kind in (("name", str), ("title", str), ("dataset", str), ("init", str)):
        if not isinstance(doc.get(key), kind):
            raise SpecError(f"{where}: {key} must be a string (missing or {_shown(doc.get(key))})")
    classes = doc.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise SpecError(f"{where}: classes must be a list of the class names, one per output")
    from .init import SCHEMES

    if doc["init"] not in SCHEMES:
        raise SpecError(
            f"{where}: init {doc['init']!r} is not a scheme the spec knows{did_you_mean(doc['init'], SCHEMES) or '; choose from ' + ', '.join(SCHEMES)}"
        )
    if not isinstance(doc.get("input"), dict):
        raise SpecError(f"{where}: needs an [input] table (channels, height, width)")
    net_input = _build(Input, doc["input"], f"{where}: [input]", skip=("name",))
    tables = doc.get("layers")
    if not isinstance(tables, list) or not tables:
        raise SpecError(f"{where}: needs at least one [[layers]] table")
    known = layer_types()
    built = []
    for i, table in enumerate(tables):
        label = f"{where}: layers[{i}]" + (f" ({table.get('name')})" if isinstance(table.get("name"), str) else "")
        kind = table.get("type")
        if kind not in known:
            hint = did_you_mean(str(kind), known) or f"; the spec knows {', '.join(known)}"
            raise SpecError(f"{label}: unknown layer type {_shown(kind)}{hint}")
        built.append(_build(known[kind], {k: v for k, v in table.items() if k != "type"}, label))
    try:
        return Variant(doc["name"], doc["title"], doc["dataset"], net_input, tuple(built), doc["init"], tuple(classes))
    except (ValueError, TypeError) as e:
        raise SpecError(f"{where}: {e}") from None


def load(path: str | os.PathLike) -> Variant:
    """A spec file as a Variant (at most MAX_BYTES read).

    Raises:
        SpecError: one line naming the file and the problem.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise SpecError(f"{path}: cannot read it ({e.strerror or e})") from None
    if len(data) > MAX_BYTES:
        raise SpecError(f"{path}: more than {MAX_BYTES >> 10} KiB; a network's spec is a few KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text") from None
    return loads(text, str(path))
