"""Where the IIIF authorization services live: one table of paths, for the routes that answer them
and for the descriptions (info.json, manifests) that point at them.

Auth 2.0 (Authorization Flow): the probe is per image; the ``active`` access service is the login
page itself, opened in a tab with ``?origin=``. Auth 1.0 (Authentication): login, token, logout.
Both share the login sessions of ``sessions.py``. A degraded image's lower tier (Auth 1.0 §3.2:
a different identifier for each tier) is its identifier followed by ``DEGRADED_TIER``.
"""

from __future__ import annotations

AUTH2_PROBE = "/auth/2/probe/"  # + the image's identifier, quoted as in its Image API URLs
AUTH2_ACCESS_ACTIVE = "/auth/login"
AUTH2_ACCESS_KIOSK = "/auth/2/kiosk"
AUTH2_TOKEN = "/auth/2/token"
AUTH2_LOGOUT = "/auth/2/logout"
AUTH1_LOGIN = "/auth/1/login"
AUTH1_TOKEN = "/auth/1/token"
AUTH1_LOGOUT = "/auth/1/logout"

AUTH2_CONTEXT = "http://iiif.io/api/auth/2/context.json"
AUTH1_CONTEXT = "http://iiif.io/api/auth/1/context.json"

DEGRADED_TIER = "~preview"  # "<identifier>~preview": the watermarked preview tier of a restricted image
