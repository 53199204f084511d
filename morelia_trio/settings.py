"""Where ``serve``'s settings come from: a TOML file, MORELIA_* variables and the options.

Each source yields a partial :class:`Layer` shaped like :class:`~morelia_trio.config.Config`
(top-level keys for its own fields, ``limits``, ``abuse`` and ``timeouts`` nested), checked
on its own against config.py's structs, so that an error names the key, variable or option
it came from. Later layers beat earlier ones: defaults < file < environment < options.
The names are derived from the same structs the options are: a field's option
(``--timeout-idle``) in capitals after ``MORELIA_`` is its variable (``MORELIA_TIMEOUT_IDLE``).

:func:`to_toml` writes a Config back as a file that ``--config`` accepts, hiding every field
marked :data:`~morelia_trio.config.SECRET`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import msgspec.inspect

from .cluster.address import parse_event_log
from .config import AbuseLimits, Config, Limits, Rate, Timeouts
from .proxies import parse_networks

C = TypeVar("C", bound=Config)

ENV_PREFIX = "MORELIA_"
CONFIG_ENV = "MORELIA_CONFIG"  # the file, as --config names it
NO_LIMITS_ENV = "MORELIA_NO_LIMITS"

# The nested structs: the key of their table, and what their options' names start with.
SECTIONS: tuple[tuple[str, type[msgspec.Struct], str], ...] = (
    ("limits", Limits, ""),
    ("abuse", AbuseLimits, ""),
    ("timeouts", Timeouts, "timeout-"),
)
# Fields of Config that code and tests set, and no operator: not options, nor keys of a file.
NOT_SETTINGS = frozenset({"argon2", "hash_workers"})

RATE_EXPECTED = 'expected a rate "BURST/PER_MINUTE", both positive, such as "5/0.5"'
RATE_IN_FILE_EXPECTED = RATE_EXPECTED + " (or a table {burst, per_minute})"


class SettingError(ValueError):
    """A wrong setting: one line naming it (key, variable or option) and what was expected."""


@dataclass(frozen=True)
class Setting:
    """One setting of ``serve``: where it lives in Config, and its option's name."""

    path: tuple[str, ...]  # ("port",) or ("timeouts", "idle")
    option: str  # "--timeout-idle"
    is_rate: bool
    is_list: bool = False  # a repeatable option; its variable separates items with commas

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.option.removeprefix("--").replace("-", "_").upper()

    @property
    def key(self) -> str:
        return ".".join(self.path)


def _fields(struct: type[msgspec.Struct]) -> tuple[msgspec.inspect.Field, ...]:
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    return info.fields


def all_settings() -> tuple[Setting, ...]:
    """Every setting, in the order the options are listed."""
    sections = {name for name, _, _ in SECTIONS}
    found = [
        Setting((f.name,), "--" + f.name.replace("_", "-"), False, isinstance(f.default, tuple))
        for f in _fields(Config)
        if f.name not in sections | NOT_SETTINGS
    ]
    for section, struct, prefix in SECTIONS:
        found.extend(
            Setting(
                (section, f.name),
                "--" + prefix + f.name.replace("_", "-"),
                isinstance(f.default, Rate),
            )
            for f in _fields(struct)
        )
    return tuple(found)


SETTINGS = all_settings()
_BY_ENV = {setting.env: setting for setting in SETTINGS}


@dataclass
class Layer:
    """What one source says: nested values as a file holds them, and whether to switch the
    abuse limits off (None: it does not say)."""

    values: dict[str, Any] = field(default_factory=dict)
    no_limits: bool | None = None

    def put(self, path: tuple[str, ...], value: object) -> None:
        table = self.values
        for key in path[:-1]:
            table = table.setdefault(key, {})
        table[path[-1]] = value

    def get(self, path: tuple[str, ...]) -> object:
        value: object = self.values
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value


def from_file(path: Path, config_type: type[Config] = Config) -> Layer:
    """The layer a TOML file gives. ``abuse = false`` is ``--no-limits``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SettingError(f"{path}: not UTF-8 text") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingError(f"{path}: not valid TOML: {exc}") from None
    layer = Layer(values)

    def name(at: tuple[str, ...]) -> str:
        return f"{path}: {'.'.join(at)}"

    if isinstance(values.get("abuse"), bool):
        layer.no_limits = not values.pop("abuse")
    if set_in_code := sorted(NOT_SETTINGS & values.keys()):
        raise SettingError(f"{name((set_in_code[0],))}: unknown key")
    _read_rates(layer, name, RATE_IN_FILE_EXPECTED)
    _check(layer, config_type, name, strict=True)
    return layer


def from_environ(environ: Mapping[str, str], config_type: type[Config] = Config) -> Layer:
    """The layer MORELIA_* variables give; any other MORELIA_ name is refused, as a typo."""
    layer = Layer()
    for variable, text in sorted(environ.items()):
        if not variable.startswith(ENV_PREFIX) or variable == CONFIG_ENV:
            continue
        if variable == NO_LIMITS_ENV:
            layer.no_limits = _env_bool(variable, text)
            continue
        setting = _BY_ENV.get(variable)
        if setting is None:
            known = [*_BY_ENV, CONFIG_ENV, NO_LIMITS_ENV]
            close = difflib.get_close_matches(variable, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SettingError(f"{variable}: not a setting of morelia-trio serve{hint}")
        if setting.is_list:
            layer.put(setting.path, [item.strip() for item in text.split(",") if item.strip()])
        else:
            layer.put(setting.path, text)

    def name(at: tuple[str, ...]) -> str:
        return _setting_at(at).env

    _read_rates(layer, name, RATE_EXPECTED)
    read = _check(layer, config_type, name, strict=False)  # from text: "8000" is an int
    for setting in SETTINGS:  # the values as read, not as text
        if layer.get(setting.path) is not None:
            value: object = read
            for key in setting.path:
                value = getattr(value, key)
            layer.put(setting.path, _plain(value))
    return layer


def _env_bool(variable: str, text: str) -> bool:
    try:
        return msgspec.convert(text, bool, strict=False)
    except msgspec.ValidationError:
        raise SettingError(f"{variable}: expected 1 or 0 (true or false)") from None


def from_args(args: argparse.Namespace, config_type: type[Config] = Config) -> Layer:
    """The layer the options given on the command line make (absent ones are not in args)."""
    layer = Layer(no_limits=True if getattr(args, "no_limits", False) else None)
    for setting in SETTINGS:
        dest = setting.option.removeprefix("--").replace("-", "_")
        if hasattr(args, dest):
            layer.put(setting.path, _plain(getattr(args, dest)))

    def name(at: tuple[str, ...]) -> str:
        return _setting_at(at).option

    _check(layer, config_type, name, strict=True)
    return layer


def resolve(config_type: type[C], *layers: Layer) -> C:
    """The Config the layers make together, each beating those before it."""
    values: dict[str, Any] = {}
    no_limits = False
    for layer in layers:
        _merge(values, layer.values)
        if layer.no_limits is not None:
            no_limits = layer.no_limits
    config = msgspec.convert(values, config_type, dec_hook=_decode_path)
    return msgspec.structs.replace(config, abuse=None) if no_limits else config


def _merge(into: dict[str, Any], values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _setting_at(path: tuple[str, ...]) -> Setting:
    """The setting an error's path falls in (a rate's path goes on into the rate)."""
    for setting in SETTINGS:
        if path[: len(setting.path)] == setting.path:
            return setting
    raise AssertionError(f"no setting at {path}")  # the layer holds only known settings


def _read_rates(layer: Layer, name: Callable[[tuple[str, ...]], str], expected: str) -> None:
    """Rates written as text become tables; a table is left for the schema to check."""
    for setting in SETTINGS:
        if not setting.is_rate or not isinstance(layer.get(setting.path[:-1]), dict):
            continue
        value = layer.get(setting.path)
        if value is None or isinstance(value, dict):
            continue
        if not isinstance(value, str):
            raise SettingError(f"{name(setting.path)}: {expected}")
        try:
            rate = Rate.parse(value)
        except ValueError:
            raise SettingError(f"{name(setting.path)}: {expected}") from None
        layer.put(setting.path, msgspec.structs.asdict(rate))


_VALIDATION = re.compile(r"(?s)(?P<said>.*?)(?: - at `\$(?P<at>[^`]*)`)?")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<key>.*)`")


def _check(
    layer: Layer,
    config_type: type[Config],
    name: Callable[[tuple[str, ...]], str],
    *,
    strict: bool,
) -> Config:
    """Decode the layer with the defaults filling the rest; a failure names what it was."""
    try:
        config = msgspec.convert(layer.values, config_type, strict=strict, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        found = _VALIDATION.fullmatch(str(exc))
        assert found is not None  # the pattern matches any text
        said, at = found["said"], found["at"] or ""
        path = tuple(key for key in re.split(r"\.|\[\d+\]", at) if key)
        if unknown := _UNKNOWN.fullmatch(said):
            path, said = (*path, unknown["key"]), "unknown key"
        elif not strict:  # every variable is text: "got `str`" says nothing
            said = said.removesuffix(", got `str`")
        said = said[:1].lower() + said[1:]
        raise SettingError(f"{name(path)}: {said}") from None
    try:
        parse_networks(config.trusted_proxy)
    except ValueError as exc:
        raise SettingError(f"{name(('trusted_proxy',))}: {exc}") from None
    if config.event_log is not None:
        try:
            parse_event_log(config.event_log)
        except ValueError as exc:
            raise SettingError(f"{name(('event_log',))}: {exc}") from None
    return config


def _plain(value: object) -> object:
    """A value as a file would hold it (a path as text, a rate as a table)."""
    return msgspec.to_builtins(value, enc_hook=lambda path: str(path))


def _decode_path(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError


# --- --print-config -----------------------------------------------------------------------


def to_toml(config: msgspec.Struct, skip: frozenset[str] = NOT_SETTINGS) -> str:
    """The struct as TOML that --config reads back to the same value, secrets left out.

    A secret field becomes a comment saying it is hidden: the file read back then lacks it,
    which is safer than a placeholder the server would take for the value itself.
    """
    lines = ["# morelia-trio serve: defaults < --config file < MORELIA_* variables < options"]
    tables: list[tuple[str, msgspec.Struct]] = []
    for f in _fields(type(config)):
        value = getattr(config, f.name)
        if f.name in skip:
            continue
        if isinstance(value, msgspec.Struct) and not isinstance(value, Rate):
            tables.append((f.name, value))
        elif value is None and f.name == "abuse":
            lines.append("abuse = false  # no abuse limits")
        elif value is not None:  # TOML has no null: a None is the default, left out
            lines.append(_toml_line(f, value))
    for table, struct in tables:
        lines.extend(["", f"[{table}]"])
        lines.extend(_toml_line(f, getattr(struct, f.name)) for f in _fields(type(struct)))
    return "\n".join(lines) + "\n"


def _toml_line(f: msgspec.inspect.Field, value: object) -> str:
    if _is_secret(f):
        return f"# {f.name} = (hidden)"
    return f"{f.name} = {_toml_value(value)}"


def _is_secret(f: msgspec.inspect.Field) -> bool:
    kind = f.type
    return isinstance(kind, msgspec.inspect.Metadata) and bool((kind.extra or {}).get("secret"))


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _toml_float(value)
    if isinstance(value, Rate):
        return _toml_string(f"{value.burst}/{_exact(value.per_minute)}")
    if isinstance(value, str | Path):
        return _toml_string(str(value))
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)  # the shortest text that reads back as the same float


def _exact(number: float) -> str:
    """As a person writes it (10, not 10.0), unless that would change it (100/60)."""
    short = f"{number:g}"
    return short if float(short) == number else repr(number)


def _toml_string(text: str) -> str:
    # JSON's escapes are TOML's too; DEL is the one control character JSON leaves raw and
    # TOML refuses, and non-ASCII stays raw (JSON's surrogate pairs are not TOML).
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
