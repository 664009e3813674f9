"""Records -> IIIF Presentation 3.0 Manifests and Collections, with iiif-prezi3's models.

Pure: every input is a value (records, image sizes, a ``Publisher`` from
settings, the base URL, the museum's ``Vocabulary``). Ids are
``{base}/iiif/manifests/{inventory}``, ``{base}/iiif/collections/{path}``; images
point at this server's Image API, 3.0 first with a 2.1 service alongside for
older viewers. Language maps carry only the languages the museum wrote: a term's
English comes from the vocabulary, and a value without it stays Vietnamese only.

A restricted image (``ImageRef.degraded_size``: anonymous clients get it no larger) keeps its
full-resolution image services, carrying its authorization services (``ImageRef.auth``), with the
Authorization Flow 2.0 context first in the manifest's ``@context``; its thumbnails stay within the
degraded size, and the manifest's ``requiredStatement`` says how to request access (docs/access.md,
"Manifests of restricted records").
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from iiif_prezi3 import (
    Annotation,
    AnnotationBody,
    AnnotationPage,
    Canvas,
    Collection,
    CollectionRef,
    Homepage,
    KeyValueString,
    Manifest,
    ManifestRef,
    Provider,
    ServiceV2,
    ServiceV3,
)
from iiif_prezi3.skeleton import Class

from ..access.endpoints import AUTH2_CONTEXT
from .records import Record, Text
from .vocabulary import Vocabulary

NO_VOCABULARY = Vocabulary()
NO_TEXT = Text()

MANIFESTS = "iiif/manifests"
COLLECTIONS = "iiif/collections"
TOP = "top"
PRESENTATION_CONTEXT = "http://iiif.io/api/presentation/3/context.json"
#: Extension contexts come first, the Presentation context last (Presentation 3.0 §4.6; Auth 2.0 §2.1:
#: the auth context "MUST come before" it). Auth 1.0 services need none: Presentation 3.0 types them.
RESTRICTED_CONTEXT = [AUTH2_CONTEXT, PRESENTATION_CONTEXT]
ACCESS_LABEL = Text("Ghi công và quyền truy cập", "Attribution and access")

#: Labels of the metadata pairs, in display order: (record field, Vietnamese, English, value language).
#: Values in "vi" are the export's Vietnamese terms, with their English from the vocabulary.
METADATA = (
    ("object_type", "Loại hình", "Object type", "vi"),
    ("heritage_rank", "Xếp hạng", "Heritage rank", "vi"),
    ("date", "Niên đại", "Date", "none"),
    ("period", "Thời kỳ", "Period", "vi"),
    ("material", "Chất liệu", "Material", "vi"),
    ("dimensions", "Kích thước (cm)", "Dimensions (cm)", "none"),
    ("site", "Địa điểm", "Site", "vi"),
    ("inventory_number", "Số hiệu", "Inventory number", "none"),
)
#: Labels of the collections grouping records by a field.
GROUP_LABELS = {
    "object_type": Text("Theo loại hình", "By object type"),
    "site": Text("Theo địa điểm", "By site"),
    "heritage_rank": Text("Theo xếp hạng", "By heritage rank"),
    "period": Text("Theo thời kỳ", "By period"),
    "material": Text("Theo chất liệu", "By material"),
}


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One scan as the image server knows it: identifier and full-size dimensions; for a restricted
    image, the long side anonymous clients may have and the services of its authorization flows."""

    identifier: str
    width: int
    height: int
    degraded_size: int = 0  # 0: open to everyone
    auth: tuple[dict[str, Any], ...] = ()  # JSON-ready service blocks for its image services


@dataclass(frozen=True, slots=True)
class Publisher:
    """What every manifest says about who publishes it (``[manifests]`` settings)."""

    provider_id: str
    provider_label: Text
    provider_homepage: str
    collection_label: Text
    item_homepage: str = ""  # template with {inventory_number}; empty: this server's item page (not in static trees)
    thumbnail_size: int = 400
    paged_types: tuple[str, ...] = ()
    access_note: Text = NO_TEXT  # how to request access to restricted images ([access] access_note_vi/en)


@dataclass(frozen=True, slots=True)
class Ref:
    """A collection a resource is part of, or an item of a collection."""

    id: str
    label: Text


def slug(value: str) -> str:
    """ASCII path segment of a Vietnamese value: ``Di tích kiến trúc`` -> ``di-tich-kien-truc``."""
    plain = unicodedata.normalize("NFD", value.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-") or "x"


def manifest_path(inventory_number: str) -> str:
    return f"{MANIFESTS}/{quote(inventory_number, safe='')}"


def collection_path(*parts: str) -> str:
    return "/".join((COLLECTIONS, *parts))


def item_page(base: str, inventory_number: str) -> str:
    """This server's public page of a record (``web/urls.item_path``), a manifest's ``homepage``."""
    from ..web.urls import item_path  # lazily: importing the web package imports this module

    return base + item_path(inventory_number)


def image_service(base: str, identifier: str, version: int = 3) -> str:
    return f"{base}/iiif/{version}/{quote(identifier, safe='')}"


def _label(text: Text, fallback: str) -> dict[str, list[str]]:
    return text.language_map() or {"none": [fallback]}


def _services(base: str, identifier: str) -> list[ServiceV3 | ServiceV2]:
    return [
        ServiceV3(id=image_service(base, identifier, 3), type="ImageService3", profile="level2"),
        ServiceV2(
            id=image_service(base, identifier, 2),
            type="ImageService2",
            profile="http://iiif.io/api/image/2/level2.json",
        ),
    ]


def thumbnail(base: str, image: ImageRef, size: int) -> AnnotationBody:
    """A thumbnail no larger than ``size`` pixels, never upscaled, with its image service.

    A restricted image's is no larger than its degraded size either (the watermarked view anonymous
    clients get) and has no service: it is a picture to show, not an invitation to ask for more."""
    if image.degraded_size:
        size = min(size, image.degraded_size)
    scale = min(1.0, size / max(image.width, image.height))
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    return AnnotationBody(
        id=f"{image_service(base, image.identifier)}/full/{width},{height}/0/default.jpg",
        type="Image",
        format="image/jpeg",
        width=width,
        height=height,
        service=None if image.degraded_size else _services(base, image.identifier)[:1],
    )


def _metadata(record: Record, vocabulary: Vocabulary) -> list[KeyValueString]:
    pairs = []
    for name, vi, en, language in METADATA:
        value = record.field(name)
        if value:
            if name == "dimensions":
                value = value.replace(" x ", " × ")
            values = vocabulary.text(name, value).language_map() if language == "vi" else {language: [value]}
            pairs.append(KeyValueString(label={"vi": [vi], "en": [en]}, value=values))
    return pairs


def _canvas(manifest_id: str, base: str, index: int, image: ImageRef, paged: bool) -> Canvas:
    canvas_id = f"{manifest_id}/canvas/{index}"
    body = AnnotationBody(
        id=f"{image_service(base, image.identifier)}/full/max/0/default.jpg",
        type="Image",
        format="image/jpeg",
        width=image.width,
        height=image.height,
        service=_services(base, image.identifier),
    )
    painting = Annotation(
        id=f"{manifest_id}/annotation/{index}", type="Annotation", motivation="painting", body=body, target=canvas_id
    )
    vi, en = ("Trang", "Page") if paged else ("Ảnh", "Image")
    return Canvas(
        id=canvas_id,
        label={"vi": [f"{vi} {index}"], "en": [f"{en} {index}"]},
        width=image.width,
        height=image.height,
        items=[AnnotationPage(id=f"{manifest_id}/page/{index}", type="AnnotationPage", items=[painting])],
    )


def build_manifest(
    record: Record,
    images: Sequence[ImageRef],
    base: str,
    publisher: Publisher,
    part_of: Sequence[Ref] = (),
    vocabulary: Vocabulary = NO_VOCABULARY,
) -> Manifest:
    """The Manifest of one record: one Canvas per scan, in the export's order."""
    manifest_id = f"{base}/{manifest_path(record.inventory_number)}"
    paged = record.object_type in publisher.paged_types and len(images) > 1
    title = _label(record.title, record.inventory_number)
    attribution = record.attribution or publisher.provider_label
    restricted = any(image.degraded_size for image in images)
    homepage = (
        publisher.item_homepage.format(inventory_number=quote(record.inventory_number, safe=""))
        if publisher.item_homepage
        else item_page(base, record.inventory_number)
    )
    manifest = Manifest(
        context=RESTRICTED_CONTEXT if any(image.auth for image in images) else None,
        id=manifest_id,
        label=title,
        metadata=_metadata(record, vocabulary) or None,
        summary=record.description.language_map() or None,
        requiredStatement=(
            _access_statement(attribution, publisher.access_note)
            if restricted
            else KeyValueString(label={"vi": ["Ghi công"], "en": ["Attribution"]}, value=attribution.language_map())
        ),
        rights=record.rights or None,
        navDate=record.nav_date,
        provider=[
            Provider(
                id=publisher.provider_id,
                type="Agent",
                label=publisher.provider_label.language_map(),
                homepage=[
                    Homepage(
                        id=publisher.provider_homepage,
                        type="Text",
                        label=publisher.provider_label.language_map(),
                        format="text/html",
                    )
                ],
            )
        ],
        homepage=[Homepage(id=homepage, type="Text", label=title, format="text/html")],
        thumbnail=[thumbnail(base, images[0], publisher.thumbnail_size)],
        behavior=["paged"] if paged else None,
        partOf=[_part_of(base, ref) for ref in part_of] or None,
        items=[_canvas(manifest_id, base, n, image, paged) for n, image in enumerate(images, start=1)],
    )
    return manifest


def _access_statement(attribution: Text, note: Text) -> KeyValueString:
    """Presentation 3.0 allows one ``requiredStatement``: the attribution the rights may require, then
    how to request access, per language (a language the attribution lacks gets the note alone, never
    the other language's attribution passed off as its own)."""
    value = {
        language: [text for text in (getattr(attribution, language), getattr(note, language)) if text]
        for language in ("vi", "en")
    }
    return KeyValueString(label=ACCESS_LABEL.language_map(), value={k: v for k, v in value.items() if v})


def _part_of(base: str, ref: Ref) -> Class:
    return Class(id=f"{base}/{ref.id}", type="Collection", label=_label(ref.label, ref.id))


def manifest_ref(base: str, record: Record, first_image: ImageRef, publisher: Publisher) -> ManifestRef:
    return ManifestRef(
        id=f"{base}/{manifest_path(record.inventory_number)}",
        type="Manifest",
        label=_label(record.title, record.inventory_number),
        thumbnail=[thumbnail(base, first_image, publisher.thumbnail_size)],
    )


def build_collection(
    path: str,
    label: Text,
    items: Sequence[ManifestRef | CollectionRef],
    base: str,
    publisher: Publisher,
    first_image: ImageRef | None,
    part_of: Sequence[Ref] = (),
) -> Collection:
    return Collection(
        id=f"{base}/{path}",
        label=_label(label, path),
        thumbnail=[thumbnail(base, first_image, publisher.thumbnail_size)] if first_image else None,
        provider=None,
        partOf=[_part_of(base, ref) for ref in part_of] or None,
        items=list(items),
    )


def collection_ref(collection: Collection) -> CollectionRef:
    return CollectionRef(
        id=collection.id, type="Collection", label=collection.label, thumbnail=collection.thumbnail or None
    )


#: The path segment naming each kind of resource embedded in a manifest: ``{manifest id}/{kind}/{n}``.
EMBEDDED_KINDS = {"canvas": "Canvas", "page": "AnnotationPage", "annotation": "Annotation"}


def embedded_resource(manifest: Mapping[str, Any], resource_id: str) -> dict[str, Any] | None:
    """The Canvas, AnnotationPage or Annotation of a (rendered) manifest whose id is ``resource_id``.

    Their ids are HTTP URIs on this server; a client that follows one (a viewer resolving a
    Content State, a harvester checking links) gets the resource as the manifest embeds it.
    """
    for canvas in manifest.get("items", ()):
        if canvas.get("id") == resource_id:
            return dict(canvas)
        for page in canvas.get("items", ()):
            if page.get("id") == resource_id:
                return dict(page)
            for annotation in page.get("items", ()):
                if annotation.get("id") == resource_id:
                    return dict(annotation)
    return None


def image_auth(base: str, images: Sequence[ImageRef]) -> dict[str, tuple[dict[str, Any], ...]]:
    """The authorization services of each restricted image's services (3.0 and 2.1), by service id."""
    return {image_service(base, i.identifier, v): i.auth for i in images if i.auth for v in (3, 2)}


def to_bytes(resource: Manifest | Collection, auth: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> bytes:
    """Compact UTF-8 JSON-LD with the Presentation 3 context; key order as built, so bytes are stable.

    ``auth`` (``image_auth``) is set as the ``service`` of the image services it names, here on the
    JSON: iiif-prezi3's models would rewrite the blocks (an ``external`` access service has no id;
    they invent one)."""
    document = json.loads(resource.jsonld())
    if auth:
        _attach(document, auth)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _attach(node: Any, auth: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    if isinstance(node, list):
        for item in node:
            _attach(item, auth)
    elif isinstance(node, dict):
        blocks = auth.get(node.get("id") or node.get("@id") or "")
        if blocks is not None and (node.get("type") or node.get("@type")) in ("ImageService3", "ImageService2"):
            node["service"] = json.loads(json.dumps(list(blocks)))  # a copy per image service
            return
        for value in node.values():
            _attach(value, auth)


class Groups:
    """Records grouped by each configured field: field -> value -> (slug, records), values sorted."""

    def __init__(self, fields: tuple[str, ...], records: list[Record]) -> None:
        self.by_field: dict[str, dict[str, tuple[str, list[Record]]]] = {}
        self._slug: dict[tuple[str, str], str] = {}
        for name in fields:
            values: dict[str, list[Record]] = {}
            for record in records:
                value = record.field(name)
                if value:
                    values.setdefault(value, []).append(record)
            slugs: dict[str, str] = {}
            taken: set[str] = set()
            for value in sorted(values, key=lambda v: (slug(v), v)):
                candidate, n = slug(value), 2
                while candidate in taken:
                    candidate, n = f"{slug(value)}-{n}", n + 1
                taken.add(candidate)
                slugs[value] = candidate
                self._slug[(name, value)] = candidate
            if values:
                self.by_field[name] = {value: (slugs[value], values[value]) for value in slugs}

    def memberships(self, record: Record) -> list[tuple[str, str]]:
        """(field, value) of every collection the record is in."""
        return [(name, record.field(name)) for name in self.by_field if record.field(name)]

    def path(self, name: str, value: str) -> str:
        """The path of the collection of one value of a field."""
        return collection_path(slug(name), self._slug[(name, value)])


def part_of_refs(groups: Groups, record: Record, vocabulary: Vocabulary = NO_VOCABULARY) -> list[Ref]:
    """The value collections a record's manifest is part of, labelled as the collections are."""
    return [Ref(groups.path(name, value), vocabulary.text(name, value)) for name, value in groups.memberships(record)]


def collection_tree(
    records: Sequence[Record],
    groups: Groups,
    thumbnails: Mapping[str, ImageRef],
    base: str,
    publisher: Publisher,
    vocabulary: Vocabulary = NO_VOCABULARY,
) -> dict[str, Collection]:
    """top -> one collection per grouping field -> one per value -> Manifest references; keyed by path."""
    tree: dict[str, Collection] = {}

    def refs(members: Sequence[Record]) -> list[ManifestRef | CollectionRef]:
        return [
            manifest_ref(base, r, thumbnails[r.inventory_number], publisher)
            for r in members
            if r.inventory_number in thumbnails
        ]

    def first_thumbnail(members: Sequence[Record]) -> ImageRef | None:
        return next((thumbnails[r.inventory_number] for r in members if r.inventory_number in thumbnails), None)

    top_path = collection_path(TOP)
    top_label = publisher.collection_label
    top_items: list[ManifestRef | CollectionRef] = []
    for name, values in groups.by_field.items():
        group_path = collection_path(f"by-{slug(name)}")
        group_label = GROUP_LABELS[name]
        value_refs: list[ManifestRef | CollectionRef] = []
        for value, (_, members) in values.items():
            value_path = groups.path(name, value)
            tree[value_path] = build_collection(
                value_path,
                vocabulary.text(name, value),
                refs(members),
                base,
                publisher,
                first_thumbnail(members),
                [Ref(group_path, group_label)],
            )
            value_refs.append(collection_ref(tree[value_path]))
        everyone = [r for _, members in values.values() for r in members]
        tree[group_path] = build_collection(
            group_path, group_label, value_refs, base, publisher, first_thumbnail(everyone), [Ref(top_path, top_label)]
        )
        top_items.append(collection_ref(tree[group_path]))
    if not groups.by_field:
        top_items = refs(records)
    tree[top_path] = build_collection(top_path, top_label, top_items, base, publisher, first_thumbnail(records))
    return tree
