"""msgspec's validation messages, said in plain words that name the field."""

from __future__ import annotations

import re
from typing import Final

import msgspec

_TYPE_NAMES: Final = {
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "null": "null",
    "array": "a list",
    "object": "an object",
    "bool": "true or false",
}
_GOT_NAMES: Final = {"float": "a decimal number"}  # never "must be a number, not a number"
_EXPECTED: Final = re.compile(r"Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)`")
_BOUND: Final = re.compile(r"Expected `(?P<want>[^`]*)` (?P<op>[<>]=?) (?P<bound>[^ ]+) - at")
_BOUND_WORDS: Final = {">=": "at least", "<=": "at most", ">": "above", "<": "below"}
_MISSING: Final = re.compile(r"missing required field `(?P<field>[^`]*)`")
_PATH: Final = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


def plain_words(exc: msgspec.ValidationError) -> str:
    """Say what msgspec found wrong in words for a person, naming the field."""
    message = str(exc)
    found = _PATH.search(message)
    path = found.group("path") if found else ""
    if missing := _MISSING.search(message):
        field = f"{path}.{missing.group('field')}" if path else missing.group("field")
        return f"The field {field} is required."
    where = f"The field {path}" if path else "The request"
    if expected := _EXPECTED.search(message):
        wants = [_TYPE_NAMES.get(w.strip(), w.strip()) for w in expected["want"].split("|")]
        *others, last = dict.fromkeys(wants)
        want = f"{', '.join(others)} or {last}" if others else last
        got = _GOT_NAMES.get(expected["got"]) or _TYPE_NAMES.get(expected["got"], expected["got"])
        return f"{where} must be {want}, not {got}."
    if bound := _BOUND.search(message):
        want = _TYPE_NAMES.get(bound["want"], bound["want"])
        return f"{where} must be {want} {_BOUND_WORDS[bound['op']]} {bound['bound']}."
    return f"{where} has a value that is not allowed."
