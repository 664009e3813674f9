"""Check Presentation API 3.0 documents against the official IIIF JSON Schema.

The schema (``schema/iiif_3_0.json``, copied verbatim from IIIF/presentation-validator)
is the whole check, as in the official validator: it already rejects non-CC /
non-RightsStatements.org ``rights``, ``@none`` language-map keys and plain-string
labels, so every bad fixture of the official suite fails without extra rules.
Formats (``"format": "uri"``) are not asserted, as the official validator does not.

What this adds is readable errors. The schema is a tree of ``oneOf``/``anyOf`` over
resource classes, so a bad Manifest makes jsonschema report a failure of *every*
class (Collection, AnnotationPage, …) and ``best_match`` alone often blames the wrong
one (``items/0/type: 'Canvas' does not match '^Annotation$'`` for a bad ``rights``).
Like the official validator, we follow the branch whose ``type`` matches the
document's and report that branch's own errors, one line each with a JSON path.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import validators
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator

MAX_PROBLEMS = 20
"""A broken export can yield thousands of errors; the first ones say what to fix."""

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlevel = 1
_SHORT.maxdict = 3
_SHORT.maxlist = 3


@cache
def _validator() -> Validator:
    """The validator, built once on first use (about 1 ms) so importing this module stays free."""
    text = files("iiif_server.presentation").joinpath("schema/iiif_3_0.json").read_text("utf-8")
    schema = json.loads(text)
    cls = validators.validator_for(schema)  # the Draft its "$schema" declares (draft-07)
    cls.check_schema(schema)
    return cls(schema)


def problems(document: Mapping[str, Any], *, limit: int | None = MAX_PROBLEMS) -> list[str]:
    """One line per problem (``path: message``), at most ``limit`` (None: all); empty means valid."""
    # jsonschema's "object" is dict; anything not a Mapping goes through to be reported as such.
    instance = dict(document) if isinstance(document, Mapping) and not isinstance(document, dict) else document
    out: list[str] = []
    seen: set[str] = set()
    for error in _leaves(_validator().iter_errors(instance)):
        line = f"{_path(error)}: {_message(error)}"
        if line not in seen:  # allOf branches repeat the same check (e.g. ``label`` twice)
            seen.add(line)
            out.append(line)
            if len(out) == limit:
                break
    return out


def is_valid(document: Mapping[str, Any]) -> bool:
    """True when ``problems`` finds nothing."""
    return not problems(document)


def _leaves(errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
    """Replace each ``oneOf``/``anyOf`` failure by the errors of the branch meant for the instance.

    The meant branch is the only one that does not reject the instance's JSON type or
    its ``type`` property. With no such branch (a Canvas in a Collection's ``items``) or
    several (``rights``: three URI patterns), the combinator failure itself is the problem.
    """
    for error in errors:
        if error.validator not in ("oneOf", "anyOf") or not error.context:
            yield error
            continue
        branches: dict[int, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        meant = [subs for subs in branches.values() if not any(_wrong_kind(sub) for sub in subs)]
        if len(meant) == 1:
            yield from _leaves(meant[0])
        elif meant and isinstance(error.instance, dict):
            # Several shapes fit the ``type`` (e.g. an object with no ``type``): let jsonschema pick.
            yield from _leaves([best_match([sub for subs in meant for sub in subs])])
        else:
            yield error


def _wrong_kind(error: ValidationError) -> bool:
    """Whether a branch rejects the instance as the wrong kind of thing, not as a broken one."""
    here = list(error.relative_path)
    return (not here and error.validator == "type") or here == ["type"]


def _path(error: ValidationError) -> str:
    return "/".join(str(part) for part in error.absolute_path) or "(root)"


def _message(error: ValidationError) -> str:
    """jsonschema's message, with the offending value abbreviated and schema's explanation added."""
    if error.validator in ("oneOf", "anyOf") and error.context:  # no context: valid under several oneOf branches
        kind = error.instance.get("type") if isinstance(error.instance, dict) else None
        message = (
            f"{kind!r} is not allowed here"
            if isinstance(kind, str)
            else f"{_SHORT.repr(error.instance)} matches none of the allowed forms"
        )
        description = error.schema.get("description") if isinstance(error.schema, dict) else None
        return f"{message} ({description})" if description else message
    message = error.message
    full = repr(error.instance)
    if message.startswith(full):
        message = _SHORT.repr(error.instance) + message[len(full) :]
    return " ".join(message.split())  # one line, whatever the value held
