"""What an ingest does beyond writing masters, for the CLI and the queue's workers alike.

Replaced masters are purged from the derivative cache (their keys already change with the
file's fingerprint; the purge frees the space at once) and every published manifest that shows
a replaced master gets an ``Update`` in the Change Discovery stream, so harvesters fetch it
again even when its JSON did not change. Here rather than in ``report`` (the CLI's output) so
that ``queue`` needs nothing of the CLI: no import cycle.
"""

from __future__ import annotations

import logging

from ..config import Settings
from ..errors import ConfigError
from ..presentation.build import manifest_path
from ..services import Services
from .convert import MasterOptions

log = logging.getLogger(__name__)


def options_of(settings: Settings) -> MasterOptions:
    ingest = settings.ingest
    return MasterOptions(ingest.quality, ingest.compression, ingest.alpha_compression, ingest.tile_size)


def notify(services: Services, identifiers: list[str]) -> list[str]:
    """Purge replaced masters' derivatives; publish an Update for each manifest showing one."""
    tiered = services.caches.tiered
    for identifier in identifiers:
        tiered.purge(identifier)
    if not services.settings.manifests.source.is_file():
        return []
    catalogue = services.catalogue
    try:
        snapshot = catalogue.build()
    except ConfigError as err:
        log.error("manifests not rebuilt after ingest: %s", err)
        return []
    wanted = set(identifiers)
    touched = []
    for record in snapshot.published:
        if wanted.intersection(record.images) and catalogue.changes is not None:
            path = manifest_path(record.inventory_number)
            if catalogue.changes.touch(path, "Manifest") is not None:
                touched.append(path)
    return touched
