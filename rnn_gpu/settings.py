"""Settings declared once. `setting(...)` makes a dataclass field whose
metadata (a `Spec`) holds the setting's type, bounds or choices, help and
owner; from it follow the command line's flag (`add_flags`: its parser, its
help with the default), the check of a value given in Python or read from a
checkpoint (`problem`), and which settings a resumed run takes from its
checkpoint (`owned_by`). A test holds the synopsis of docs/cli.md to the parsers.

Imports nothing of the package but `checks`.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import re
from dataclasses import dataclass

from .checks import real_in, whole

OWNERS = ("model", "run")  # model: a resumed run keeps its checkpoint's; run: each command line's own


class NotGiven:
    """The value of a setting nobody gave: distinct from None, which a
    setting may declare as a value of its own ("no limit")."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __reduce__(self):
        return (NotGiven, ())


NOT_GIVEN = NotGiven()


@dataclass(frozen=True)
class Spec:
    kind: type  # int, float, str, bool, or tuple (of strings, a repeatable flag)
    owner: str  # one of OWNERS
    help: str  # what the setting is, without its default
    low: float = -math.inf
    high: float = math.inf
    low_inclusive: bool = True  # a float's low bound; a whole number's always is
    choices: tuple = ()
    absent: str = ""  # what None (or not giving it) means, for the help; "" where None is no value of its own
    metavar: str | None = None


def setting(default, kind: type, owner: str, help: str, **spec) -> dataclasses.Field:
    """A dataclass field declaring one setting (see `Spec` for the rest)."""
    assert owner in OWNERS, owner
    return dataclasses.field(default=default, metadata={"setting": Spec(kind, owner, help, **spec)})


def declared(config) -> dict[str, dataclasses.Field]:
    """The settings of a dataclass (or its instance), by name, in declaration order."""
    return {f.name: f for f in dataclasses.fields(config) if "setting" in f.metadata}


def owned_by(config, owner: str) -> tuple[str, ...]:
    return tuple(name for name, f in declared(config).items() if f.metadata["setting"].owner == owner)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# A keyword as errors for Python callers write it, `batch=32` or `steps=`, not inside a path or another word.
_KEYWORD = re.compile(r"(?<![\w./=-])([a-z][a-z0-9_]*)=(\S*)")


def as_flags(text: str, names) -> str:
    """An error written for Python callers (`batch=32`, `steps=`) as the
    command line says it (`--batch 32`, `--steps`), for the keywords in `names`."""
    def flagged(match):
        name, value = match.groups()
        if name not in names:
            return match.group(0)
        return flag(name) + (f" {value}" if value else "")

    return _KEYWORD.sub(flagged, text)


# -- the checks ---------------------------------------------------------------
def bounds_text(spec: Spec) -> str:
    if spec.choices:
        return f"one of {', '.join(map(str, spec.choices))}"
    if spec.kind is int:
        if spec.high == math.inf:
            return f"a whole number >= {spec.low}"
        return f"a whole number in [{spec.low}, {spec.high}]"
    if spec.kind is float:
        low = f"{'[' if spec.low_inclusive else '('}{spec.low:g}"
        return f"a number > {spec.low:g}" if spec.high == math.inf else f"a number in {low}, {spec.high:g}]"
    if spec.kind is tuple:
        return "a list of glob patterns (strings)"
    return "True or False" if spec.kind is bool else f"a {spec.kind.__name__}"


def fits(value, spec: Spec) -> bool:
    if spec.choices:
        return isinstance(value, str) and value in spec.choices
    if spec.kind is int:
        return whole(value, spec.low, spec.high)
    if spec.kind is float:
        return real_in(value, spec.low, spec.high, spec.low_inclusive)
    if spec.kind is tuple:
        return isinstance(value, (list, tuple)) and all(isinstance(g, str) for g in value)
    if spec.kind is str:
        return isinstance(value, str) and bool(value.strip()) and "\0" not in value
    return type(value) is spec.kind


def problem(field: dataclasses.Field, value) -> str | None:
    """Why `value` is no value for the setting `field`, or None if it is one."""
    spec = field.metadata["setting"]
    if (value is None and spec.absent) or (value is NOT_GIVEN and field.default is NOT_GIVEN) or fits(value, spec):
        return None
    optional = " (or None)" if spec.absent else ""
    return f"{field.name}= must be {bounds_text(spec)}{optional}, got {value!r}"


# -- the command line ------------------------------------------------------------
def int_in(low, limit):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not whole(value, low, limit):
            raise argparse.ArgumentTypeError(f"must be between {low} and {limit}, got {value}")
        return value
    return parse


def real(low, high, low_inclusive=False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not real_in(value, low, high, low_inclusive):
            bound = "[" if low_inclusive else "("
            raise argparse.ArgumentTypeError(f"must be in {bound}{low}, {high}], got {text}")
        return value
    return parse


def text(value: str) -> str:
    """A string flag's value (a path, say): empty would mean nothing, or the current directory."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def shown(value) -> str:
    """A default as the help and the synopsis of docs/cli.md write it."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def help_text(field: dataclasses.Field, default=dataclasses.MISSING, help: str | None = None) -> str:
    spec = field.metadata["setting"]
    default = field.default if default is dataclasses.MISSING else default
    text = help or spec.help
    if spec.kind in (bool, tuple):
        return text
    said = spec.absent if default in (None, NOT_GIVEN) else shown(default)
    return f"{text} (default {said})"


def add_flags(parser, config, names=None, defaults=None, helps=None) -> None:
    """One flag per declared setting of `config` (those in `names`, by
    default all), its type, bounds, choices and help from the declaration;
    `defaults` and `helps` override a flag's default and help by name (a
    command that measures rather than trains)."""
    fields = declared(config)
    defaults, helps = defaults or {}, helps or {}
    for name in names or fields:
        field, spec = fields[name], fields[name].metadata["setting"]
        default = defaults.get(name, field.default)
        options = {"default": default, "help": help_text(field, default, helps.get(name))}
        if spec.kind is bool:
            options["action"] = "store_true"
        elif spec.kind is tuple:
            options.update(action="append", default=[], metavar=spec.metavar)
        elif spec.choices:
            options["choices"] = spec.choices
        elif spec.kind is int:
            options.update(type=int_in(spec.low, spec.high), metavar=spec.metavar)
        elif spec.kind is str:
            options.update(type=text, metavar=spec.metavar)
        else:
            options.update(type=real(spec.low, spec.high, spec.low_inclusive), metavar=spec.metavar)
        parser.add_argument(flag(name), **options)


def from_flags(config, args):
    """`config` built from parsed flags: every declared setting by its name."""
    values = {name: getattr(args, name) for name in declared(config) if hasattr(args, name)}
    return config(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
