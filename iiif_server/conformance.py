"""Run the official IIIF Image API validator (PyPI ``iiif-validator`` 1.0.5) in-process.

Requires the pip packages ``iiif-validator`` (pulls in ``Pillow``, ``bottle``,
``lxml`` and ``python-magic``).  ``python-magic`` needs the system ``libmagic``
(Debian: ``libmagic1``); without it a built-in signature sniffer is used.

The validator is driven through its Python API (``TestSuite``, ``ImageAPI``,
``ValidationInfo``) exactly like its ``iiif-validate.py`` CLI does (a fresh
suite and result object per test, tests selected by level), but with
structured results instead of log parsing.  Workarounds, all limited to
APIs that are broken under Python 3 -- nothing the tests check is changed:

* ``format_jp2``, ``format_pdf`` and ``format_webp`` call the Python 2 API
  ``urllib.urlopen``, which does not exist on Python 3, so they always crash.
  Their module-level ``urllib`` name is replaced by a shim whose ``urlopen``
  acts like Python 2's: it returns HTTP error responses instead of raising
  (the tests check ``getcode()`` themselves) and ``read()`` returns a
  latin-1 ``str``, i.e. a Python 2 byte string.  That also repairs the webp
  check ``img[8:12] != "WEBP"``, which compares bytes with str and therefore
  always fails on Python 3.
* ``format_jp2``/``format_pdf`` use the ``filemagic`` API
  (``with magic.Magic() as m: m.id_buffer(data)``) while the package depends
  on ``python-magic`` (``magic.from_buffer``), which has neither.  Their
  ``magic`` name is replaced by an object with that API backed by
  ``python-magic`` (same libmagic description strings).  If libmagic is
  missing, ``import magic`` would make the whole validator unimportable, so a
  stub module is registered and ``id_buffer`` sniffs the JP2/J2K/PDF
  signatures instead.
* ``--version 2.1`` is unusable: only ``region_square`` is registered for
  "2.1" (at level 3) and URLs are built with 1.x syntax (``native`` quality,
  no format).  Every 2.x version is therefore tested as "2.0"; 3.x as "3.0".
* Validator bugs that turn a genuine failure into an unrelated exception
  (``baseurl_redirect`` -> NameError, ``size_noup`` -> TypeError) still count
  as failures; a hint explains the real cause.
* Import-time/debug ``print`` output is swallowed; a global socket timeout is
  set because some tests call ``urlopen`` without one.

Warnings raised by the validator (e.g. 3.0 ``size_nofull``) count as failures,
as in the CLI.  Tests above ``level`` are reported as skipped; the validator
never consults ``info.json`` features to skip tests.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import socket
import sys
import types
import urllib.request
from collections.abc import Iterable
from typing import Any, Self, cast
from urllib.error import HTTPError
from urllib.parse import urlsplit

DEFAULT_IDENTIFIER = "67352ccc-d1b0-11e1-89ae-279075081939"

_HINTS = {
    ("baseurl_redirect", "NameError"): "base URI did not redirect to info.json",
    ("size_noup", "TypeError"): "upscaling size without '^' gave 200, not 400",
}


def _sniff(data: bytes) -> str:
    """Return a libmagic-style description for the formats the tests check."""
    if data.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n"):
        return "JPEG 2000 Part 1 (JP2)"
    if data.startswith(b"\xff\x4f\xff\x51"):
        return "JPEG 2000 codestream"
    if data.startswith(b"%PDF-"):
        return "PDF document"
    return "data"


class _FileMagic:
    """The subset of the ``filemagic`` ``magic.Magic`` API the tests use."""

    def __init__(self, from_buffer: Any) -> None:
        self._from_buffer = from_buffer

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def id_buffer(self, data: bytes | str) -> str:
        raw = data.encode("latin-1") if isinstance(data, str) else data
        if self._from_buffer is None:
            return _sniff(raw)
        return str(self._from_buffer(raw))


class _Py2Response:
    """Response of Python 2 ``urllib.urlopen``: no raise on HTTP errors, str body."""

    def __init__(self, resp: Any) -> None:
        self._resp = resp

    def read(self) -> str:
        return bytes(self._resp.read()).decode("latin-1")

    def getcode(self) -> int:
        return int(self._resp.getcode())

    def close(self) -> None:
        self._resp.close()


def _py2_urlopen(url: str) -> _Py2Response:
    try:
        return _Py2Response(urllib.request.urlopen(url))
    except HTTPError as err:
        return _Py2Response(err)


def _load_validator() -> types.ModuleType:
    """Import ``iiif_validator.validator`` with the Python 3 shims applied."""
    try:
        import magic  # python-magic; fails without libmagic

        from_buffer = getattr(magic, "from_buffer", None)
    except ImportError:
        from_buffer = None
        if sys.modules.get("magic") is None:
            sys.modules["magic"] = types.ModuleType("magic")
    with contextlib.redirect_stdout(io.StringIO()):
        from iiif_validator import validator  # type: ignore[import-untyped]
        from iiif_validator.tests import (  # type: ignore[import-untyped]
            format_jp2,
            format_pdf,
            format_webp,
        )
    magic_shim = types.SimpleNamespace(Magic=lambda: _FileMagic(from_buffer))
    urllib_shim = types.SimpleNamespace(urlopen=_py2_urlopen)
    for mod in (format_jp2, format_pdf, format_webp):
        mod.urllib = urllib_shim
        if hasattr(mod, "magic"):
            mod.magic = magic_shim
    return cast("types.ModuleType", validator)


def _api_version(version: str) -> str:
    major = version.strip().split(".")[0]
    if major not in ("2", "3"):
        msg = f"unsupported IIIF Image API version: {version!r}"
        raise ValueError(msg)
    return f"{major}.0"


def _run_one(
    validator: types.ModuleType,
    name: str,
    args: tuple[str, str, str, str, str],
) -> str | None:
    """Run one test; return None on success, else a failure message."""
    identifier, server, prefix, scheme, version = args
    suite = validator.TestSuite(validator.ValidationInfo())
    result = validator.ImageAPI(identifier, server, prefix, scheme, "", version, debug=False)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            suite.run_test(name, result)
    except Exception as exc:
        hint = _HINTS.get((name, type(exc).__name__))
        msg = f"{type(exc).__name__}: {exc}" + (f" ({hint})" if hint else "")
        return f"{msg}; urls={result.urls}"
    err = result.exception
    if err is None:
        return None
    kind = "warning" if err.warning else "error"
    url = err.url or result.last_url
    return f"{kind}: {err}" + (f"; url={url}" if url else "")


def run_validator(
    base_url: str,
    prefix: str,
    identifier: str,
    version: str,
    level: int = 2,
    *,
    extra_tests: Iterable[str] = (),
    seed: int | None = None,
    timeout: float = 30.0,
) -> dict[str, list[Any]]:
    """Validate the image service ``{base_url}/{prefix}/{identifier}``.

    ``base_url`` is e.g. ``http://localhost:8000`` (a path part is prepended
    to ``prefix``).  ``extra_tests`` names tests to run regardless of level
    (e.g. ``rot_mirror``).  ``seed`` makes the validator's random choices
    reproducible.  Returns ``{"passed": [name], "failed": [(name, message)],
    "skipped": [name]}``.
    """
    api_version = _api_version(version)
    url = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
    full_prefix = "/".join(p for p in (url.path.strip("/"), prefix.strip("/")) if p)
    args = (identifier, url.netloc, full_prefix, url.scheme, api_version)
    validator = _load_validator()
    tests = validator.TestSuite(validator.ValidationInfo()).list_tests(api_version)
    extra = set(extra_tests)
    unknown = extra - set(tests)
    if unknown:
        msg = f"unknown tests for {api_version}: {sorted(unknown)}"
        raise ValueError(msg)
    out: dict[str, list[Any]] = {"passed": [], "failed": [], "skipped": []}
    old_timeout, old_state = socket.getdefaulttimeout(), random.getstate()
    socket.setdefaulttimeout(timeout)
    if seed is not None:
        random.seed(seed)
    try:
        for name in sorted(tests):
            if tests[name]["level"] > level and name not in extra:
                out["skipped"].append(name)
                continue
            message = _run_one(validator, name, args)
            if message is None:
                out["passed"].append(name)
            else:
                out["failed"].append((name, message))
    finally:
        socket.setdefaulttimeout(old_timeout)
        random.setstate(old_state)
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: one summary line per version (plus failure details); exit 1 on failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://localhost:8000")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--identifier", default=DEFAULT_IDENTIFIER)
    parser.add_argument("--versions", default="2.0,3.0", help="comma separated")
    parser.add_argument("--level", type=int, default=2)
    parser.add_argument("--test", action="append", default=[], help="extra test, repeatable")
    parser.add_argument("--seed", type=int)
    opts = parser.parse_args(argv)
    ok = True
    for version in opts.versions.split(","):
        res = run_validator(
            opts.base_url,
            opts.prefix,
            opts.identifier,
            version,
            opts.level,
            extra_tests=opts.test,
            seed=opts.seed,
        )
        ok = ok and not res["failed"]
        print(
            f"IIIF {version} level {opts.level}: {len(res['passed'])} passed, "
            f"{len(res['failed'])} failed, {len(res['skipped'])} skipped"
        )
        for name, message in res["failed"]:
            print(f"  FAIL {name}: {message}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
