"""Words about a photo: its file and folder names, EXIF/IPTC captions and keywords, XMP (embedded or sidecar).

All of it comes from outside (file names, other programs' metadata, sidecar files someone put
there), so everything is bounded and parsed defensively: a sidecar larger than
``MAX_SIDECAR_BYTES`` or not well-formed XML is ignored with a logged reason, and the photo
keeps its other words.
"""

from __future__ import annotations

import logging
import os
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

from PIL import Image

from .files import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

MAX_SIDECAR_BYTES = 1 << 20
MAX_FIELD_CHARS = 4_000
DC = "{http://purl.org/dc/elements/1.1/}"
LR = "{http://ns.adobe.com/lightroom/1.0/}"
RDF_LI = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li"
EXIF_DESCRIPTION, EXIF_USER_COMMENT, EXIF_IFD = 0x010E, 0x9286, 0x8769
XP_COMMENT, XP_KEYWORDS, XP_SUBJECT, XP_TITLE = 0x9C9C, 0x9C9E, 0x9C9F, 0x9C9B
IPTC_KEYWORDS, IPTC_CAPTION, IPTC_HEADLINE = (2, 25), (2, 120), (2, 105)
# camera and phone file-name stems that say nothing about the photo: IMG_1234, DSC01234, PXL_20230101_...
CAMERA_WORDS = {
    "img",
    "dsc",
    "dscn",
    "dscf",
    "dcim",
    "pxl",
    "mvimg",
    "vid",
    "dji",
    "gopr",
    "gp",
    "sam",
    "imag",
    "photo",
    "image",
    "pict",
    "p",
    "pano",
    "burst",
    "cover",
    "edit",
    "edited",
    "copy",
    "jpg",
    "jpeg",
}


@dataclass
class PhotoWords:
    filename: str = ""
    keywords: str = ""
    description: str = ""


def sidecar_of(path: str) -> str | None:
    """The photo's XMP sidecar, if there is one: ``name.xmp`` (Lightroom, Capture One) or ``name.jpg.xmp``
    (darktable, digiKam)."""
    stem = os.path.splitext(path)[0]
    for candidate in (path + ".xmp", stem + ".xmp", path + ".XMP", stem + ".XMP"):
        if os.path.isfile(candidate):
            return candidate
    return None


def sidecar_signature(path: str) -> str:
    """What the sidecar looks like now (name, size, mtime); "" without one. A change re-reads the words."""
    sidecar = sidecar_of(path)
    if sidecar is None:
        return ""
    try:
        stat = os.stat(sidecar)
    except OSError:
        return ""
    return f"{os.path.basename(sidecar)}:{stat.st_size}:{stat.st_mtime_ns}"


def filename_words(relpath: str) -> str:
    """The words of a photo's folder and file names: "Rome 2019/rome_trevi-2.jpg" -> "Rome 2019 rome trevi"."""
    parts = _clean(relpath).replace("\\", "/").split("/")
    parts[-1] = os.path.splitext(parts[-1])[0]
    words: list[str] = []
    for part in parts:
        for word in re.split(r"[\W_]+", part):
            if not word or word.isdigit() and not 1900 <= int(word) <= 2099 or word.lower() in CAMERA_WORDS:
                continue  # numbers (but years), camera stems
            if re.fullmatch(r"[A-Za-z]{1,5}\d+|\d+[A-Za-z]+\d*", word):
                continue  # IMG1234, DSC01234, 100APPLE, 20230101T1200
            words.append(word)
    return " ".join(words)


def _from_embedded(path: str, keywords: list[str], descriptions: list[str]) -> None:
    """The EXIF, IPTC and XMP written inside the image file."""
    with Image.open(path) as image:
        _from_exif(image.getexif(), keywords, descriptions)
        _from_iptc(image, keywords, descriptions)
        xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
        if xmp:
            _from_xmp(xmp if isinstance(xmp, bytes) else str(xmp).encode("utf-8"), path, keywords, descriptions)


def photo_words(path: str, relpath: str) -> PhotoWords:
    """Everything the photo's names and metadata say about it (never raises for a bad file)."""
    keywords: list[str] = []
    descriptions: list[str] = []
    if os.path.splitext(path)[1].lower() not in VIDEO_EXTENSIONS:  # a video has no image metadata for Pillow
        try:
            _from_embedded(path, keywords, descriptions)
        except Exception as error:  # noqa: BLE001 - unreadable metadata: the photo keeps its file-name words
            log.info("%s: metadata not readable for words (%s)", path, error)
    sidecar = sidecar_of(path)
    if sidecar is not None:
        try:
            with open(sidecar, "rb") as file:
                data = file.read(MAX_SIDECAR_BYTES + 1)
            if len(data) > MAX_SIDECAR_BYTES:
                log.warning("%s: XMP sidecar larger than %d bytes, ignored", sidecar, MAX_SIDECAR_BYTES)
            else:
                _from_xmp(data, sidecar, keywords, descriptions)
        except OSError as error:
            log.warning("%s: XMP sidecar not readable (%s), ignored", sidecar, error)
    return PhotoWords(filename=filename_words(relpath), keywords=_joined(keywords), description=_joined(descriptions))


def _clean(text: str) -> str:
    """Text SQLite can store: a non-UTF-8 file name's undecodable bytes (surrogates) and NULs become "?"/" "."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", " ")


def _joined(values: list[str]) -> str:
    unique = dict.fromkeys(" ".join(_clean(value).split()) for value in values)
    return "\n".join(value for value in unique if value)[:MAX_FIELD_CHARS]


def _from_exif(exif, keywords: list[str], descriptions: list[str]) -> None:
    description = exif.get(EXIF_DESCRIPTION)
    if isinstance(description, str):
        descriptions.append(description.strip("\x00 "))
    try:
        comment = exif.get_ifd(EXIF_IFD).get(EXIF_USER_COMMENT)
    except Exception:  # noqa: BLE001 - malformed sub-IFD
        comment = None
    if isinstance(comment, bytes):
        descriptions.append(_user_comment(comment))
    elif isinstance(comment, str):
        descriptions.append(comment.strip("\x00 "))
    for tag, into in (
        (XP_KEYWORDS, keywords),
        (XP_SUBJECT, keywords),
        (XP_COMMENT, descriptions),
        (XP_TITLE, descriptions),
    ):
        value = exif.get(tag)
        if isinstance(value, (bytes, tuple)):
            text = bytes(value).decode("utf-16-le", "replace").strip("\x00 ")
            into.extend(text.split(";") if into is keywords else [text])


def _user_comment(raw: bytes) -> str:
    """EXIF UserComment: an 8-byte character-code prefix, then the text."""
    code, body = raw[:8], raw[8:]
    if code.startswith(b"UNICODE"):
        encoding = "utf-16-be" if body[:1] == b"\x00" else "utf-16-le"
        return body.decode(encoding, "replace").strip("\x00 ")
    return body.decode("utf-8", "replace").strip("\x00 ")


def _from_iptc(image, keywords: list[str], descriptions: list[str]) -> None:
    from PIL import IptcImagePlugin

    try:
        iptc = IptcImagePlugin.getiptcinfo(image) or {}
    except Exception:  # noqa: BLE001 - malformed IPTC block
        return

    def texts(key) -> list[str]:
        value = iptc.get(key)
        values = value if isinstance(value, list) else [value] if value else []
        return [item.decode("utf-8", "replace") for item in values if isinstance(item, bytes)]

    keywords.extend(texts(IPTC_KEYWORDS))
    descriptions.extend(texts(IPTC_CAPTION) + texts(IPTC_HEADLINE))


def _from_xmp(data: bytes, where: str, keywords: list[str], descriptions: list[str]) -> None:
    """dc:subject, lr:hierarchicalSubject (each level a keyword) and dc:description of an XMP packet.

    ElementTree resolves no external entities; a DOCTYPE (entity expansion) is refused outright."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        log.warning("%s: XMP with a DOCTYPE/ENTITY declaration ignored", where)
        return
    start = data.find(b"<x:xmpmeta")
    start = data.find(b"<rdf:RDF") if start < 0 else start
    end_tag = b"</x:xmpmeta>" if data[start : start + 10] == b"<x:xmpmeta" else b"</rdf:RDF>"
    end = data.find(end_tag, start)
    if start < 0 or end < 0:
        log.warning("%s: no XMP packet found, ignored", where)
        return
    try:
        root = ElementTree.fromstring(data[start : end + len(end_tag)])
    except ElementTree.ParseError as error:
        log.warning("%s: XMP is not well-formed XML (%s), ignored", where, error)
        return
    for element in root.iter():
        if element.tag in (DC + "subject", LR + "hierarchicalSubject"):
            for item in element.iter(RDF_LI):
                keywords.extend(part.strip() for part in (item.text or "").split("|"))
        elif element.tag in (DC + "description", DC + "title"):
            descriptions.extend((item.text or "").strip() for item in element.iter(RDF_LI))
