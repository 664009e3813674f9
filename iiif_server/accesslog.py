"""Access log lines (pure): NCSA combined or JSON, with duration and the tier that answered.

combined: ``client - - [time] "request line" status bytes "referer" "user-agent" seconds tier``,
Apache's combined format with two fields appended (as nginx ``log_format`` users do), so
log tools read it with a one-line format change. json: one object per line.

Secrets never reach a line: no request header is logged but Referer and User-Agent, the
user field is always ``-`` (Authorization is never read), and the values of query
parameters whose name looks like a credential (``token=``, ``key=``, ``signature=``…) are
replaced, in the request and in the referer. Control characters, quotes and backslashes
are escaped, so a crafted URL or header cannot forge a line.
"""

from __future__ import annotations

import json
import re
import time
from functools import lru_cache
from typing import NamedTuple

FORMATS = ("off", "combined", "json")
REDACTED = "REDACTED"

_SECRET_NAME = re.compile(r"token|key|secret|pass|pwd|sig|auth|code|session|jwt|credential", re.IGNORECASE)
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Entry(NamedTuple):  # a tuple: built once per request, about four times cheaper than a frozen dataclass
    client: str
    time: float  # seconds since the epoch, when the request arrived
    method: str
    target: str  # the request target as sent: path and query, still percent-encoded
    protocol: str
    status: int
    bytes: int
    duration: float  # seconds
    tier: str | None
    referer: str
    user_agent: str


def redact(target: str) -> str:
    """The URL with the values of credential-like query parameters replaced."""
    if "?" not in target:
        return target
    path, _, query = target.partition("?")
    if not _SECRET_NAME.search(query):
        return target
    parts = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        parts.append(f"{name}={REDACTED}" if eq and _SECRET_NAME.search(name) else part)
    return f"{path}?{'&'.join(parts)}"


def _escape(value: str) -> str:
    if not _UNSAFE.search(value):
        return value
    return _UNSAFE.sub(lambda m: "".join(f"\\x{b:02x}" for b in m.group().encode("utf-8", "surrogateescape")), value)


@lru_cache(maxsize=4)
def _clf_time(second: int) -> str:
    t = time.gmtime(second)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def combined(entry: Entry) -> str:
    client, method, target, protocol, referer, agent = (
        entry.client,
        entry.method,
        redact(entry.target),
        entry.protocol,
        redact(entry.referer),
        entry.user_agent,
    )
    if _UNSAFE.search(f"{client}{method}{target}{protocol}{referer}{agent}"):  # rare: escape each
        client, method, target, protocol, referer, agent = map(
            _escape, (client, method, target, protocol, referer, agent)
        )
    return (
        f'{client or "-"} - - [{_clf_time(int(entry.time))}] "{method} {target} {protocol}" '
        f'{entry.status} {entry.bytes or "-"} "{referer or "-"}" "{agent or "-"}" '
        f"{entry.duration:.6f} {entry.tier or '-'}"
    )


def as_json(entry: Entry) -> str:
    return json.dumps(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(entry.time)) + f".{int(entry.time % 1 * 1000):03d}Z",
            "client": entry.client,
            "method": entry.method,
            "target": redact(entry.target),
            "protocol": entry.protocol,
            "status": entry.status,
            "bytes": entry.bytes,
            "duration": round(entry.duration, 6),
            "tier": entry.tier,
            "referer": redact(entry.referer) or None,
            "user_agent": entry.user_agent or None,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
