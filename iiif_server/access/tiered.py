"""``TieredPolicy``: the access levels of ``[access]`` as decisions (docs/access.md).

A level's treatment for anonymous clients: ``open`` -> Allowed, ``degraded`` -> Degraded (up to
``degraded_size``), ``hidden`` -> Denied and concealed (404: not revealing that the image exists).
A client authorised for the image's level (``levels``, from a later login) is Allowed.
"""

from __future__ import annotations

from ..config import AccessSettings
from ..image.sources import Located
from . import ALLOWED, ANONYMOUS, Decision, Degraded, Denied
from .levels import LevelMap


class TieredPolicy:
    def __init__(self, settings: AccessSettings, levels: LevelMap) -> None:
        self.levels = levels
        hidden = Denied("no such image", conceal=True)
        by_treatment: dict[str, Decision] = {
            "open": ALLOWED,
            "degraded": Degraded(settings.degraded_size),
            "hidden": hidden,
        }
        self._decisions = {name: by_treatment[treatment] for name, treatment in settings.levels.items()}
        self._hidden = hidden

    def decide(self, source: Located, levels: frozenset[str] = ANONYMOUS) -> Decision:
        level = self.levels.level(source)
        if level in levels:
            return ALLOWED
        return self._decisions.get(level, self._hidden)  # a level not configured: hidden

    def stale(self) -> bool:
        return self.levels.stale()
