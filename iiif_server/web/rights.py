"""A rights URI (Presentation 3.0 ``rights``) as the name a visitor reads: "CC BY 4.0", "In Copyright".

Records hold the canonical URI (``records.clean``): Creative Commons licences and marks, and
RightsStatements.org statements. The names are the issuers' own (English, as the licences are
cited everywhere); an unknown URI reads as itself.
"""

from __future__ import annotations

import re

_CC = re.compile(r"https?://creativecommons\.org/(licenses|publicdomain)/([a-z-]+)/(\d\.\d)", re.ASCII)
_RS = re.compile(r"https?://rightsstatements\.org/(?:vocab|page)/([A-Za-z-]+)/(\d\.\d)", re.ASCII)
_MARKS = {"mark": "Public Domain Mark", "zero": "CC0"}
_STATEMENTS = {
    "InC": "In Copyright",
    "InC-OW-EU": "In Copyright – EU Orphan Work",
    "InC-EDU": "In Copyright – Educational Use Permitted",
    "InC-NC": "In Copyright – Non-Commercial Use Permitted",
    "InC-RUU": "In Copyright – Rights-holder(s) Unlocatable or Unidentifiable",
    "NoC-CR": "No Copyright – Contractual Restrictions",
    "NoC-NC": "No Copyright – Non-Commercial Use Only",
    "NoC-OKLR": "No Copyright – Other Known Legal Restrictions",
    "NoC-US": "No Copyright – United States",
    "CNE": "Copyright Not Evaluated",
    "UND": "Copyright Undetermined",
    "NKC": "No Known Copyright",
}


def name(uri: str) -> str:
    """``http://creativecommons.org/licenses/by-sa/4.0/`` -> ``CC BY-SA 4.0``; unknown: the URI."""
    found = _CC.match(uri)
    if found:
        kind, code, version = found.groups()
        if kind == "publicdomain":
            return f"{_MARKS.get(code, code)} {version}"
        return f"CC {code.upper()} {version}"
    found = _RS.match(uri)
    if found and found.group(1) in _STATEMENTS:
        return _STATEMENTS[found.group(1)]
    return uri
