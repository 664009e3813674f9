"""What the manifests may say of each image: open, restricted (degraded for anonymous clients), or hidden.

The one place that decides which records are published and how their images are described:

- a record is published when its access value is in ``[manifests] publish`` (``Settings`` refuses a
  hidden level there), and none of its images is hidden (an image takes the most restrictive level
  of all the records showing it: a manifest must not reveal an image the server conceals);
- a restricted image is described with its degraded size and its authorization services.

The levels are the image server's own (``access/levels.py``: same rules, same export), read once per
build within the catalogue's check that the export did not change meanwhile, so a manifest never
disagrees with the export it was built from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..access.describe import auth_services, embedded
from ..config import Settings, Treatment
from ..image.sources import Located
from .records import Text

Treatments = Callable[[Located], Treatment]  # an image's treatment for anonymous clients, in one build
#: The export's level names now (``access/levels.py`` ``LevelMap.snapshot``; not imported: it imports us).
LevelsNow = Callable[[], Callable[[Located], str]]


def presentation_form(block: dict[str, Any]) -> dict[str, Any]:
    """A service block of ``access/describe.py``, as a 3.0 document embeds it (``describe.embedded``),
    with every service holding an id (Presentation 3.0 ``service``: "MUST have either the id or @id").

    The Auth 2.0 ``external`` access service has no id in info.json (Auth 2.0 §3.1: "SHOULD NOT be
    present, and any value MUST be ignored"); here it gets ``{probe id}#external``, the part of the
    probe's description it is, which clients ignore, so that manifests stay valid Presentation 3.0.
    """
    (block,) = embedded([block], version3=True)
    if block.get("type") != "AuthProbeService2":
        return block
    inner = [
        {"id": f"{block['id']}#external", **access} if access.get("profile") == "external" else access
        for access in block.get("service", [])
    ]
    return {**block, "service": inner}


class ImageAccess:
    def __init__(self, settings: Settings, levels: LevelsNow) -> None:
        self.settings = settings
        self.levels = levels
        access = settings.access
        self.degraded_size = access.degraded_size
        self.note = Text(access.access_note_vi, access.access_note_en)
        self.publish = frozenset(settings.manifests.publish)
        #: Everything the described services depend on, for the catalogue's cache keys.
        self.tag = repr((access, settings.manifests.provider_label_vi, settings.manifests.provider_label_en))

    def read(self) -> Treatments:
        """Each image's treatment for anonymous clients, from the export as it is now."""
        level, treatments = self.levels(), self.settings.access.levels
        return lambda located: treatments.get(level(located), "hidden")  # a level not configured: hidden

    def published(self, level: str) -> bool:
        return level in self.publish

    def services(self, base: str, identifier: str) -> tuple[dict[str, Any], ...]:
        """The authorization services of a restricted image's services, as info.json has them."""
        return tuple(presentation_form(block) for block in auth_services(self.settings, base, identifier))
