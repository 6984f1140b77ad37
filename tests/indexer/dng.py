"""A minimal DNG writer for tests: a 16-bit RGGB mosaic, optionally with an embedded JPEG preview as cameras write.

Written by hand (a few TIFF tags) so the tests need no DNG library and the preview case is really exercised.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL = 1, 2, 3, 4, 5, 10


def _shorts(*values) -> bytes:
    return struct.pack(f"<{len(values)}H", *values)


def _longs(*values) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def _rationals(kind: str, *pairs) -> bytes:
    return b"".join(struct.pack(f"<{kind}{kind}", a, b) for a, b in pairs)


def dng_bytes(width: int = 64, height: int = 48, preview: Image.Image | None = None, seed: int = 0) -> bytes:
    """IFD0: the CFA mosaic (what LibRaw demosaics); IFD1, when ``preview`` is given: that image as a JPEG."""
    mosaic = np.random.default_rng(seed).integers(500, 3500, (height, width), dtype=np.uint16).tobytes()
    blobs = {"mosaic": mosaic}
    raw_ifd = [
        (254, LONG, 1, _longs(0)),
        (256, LONG, 1, _longs(width)),
        (257, LONG, 1, _longs(height)),
        (258, SHORT, 1, _shorts(16)),
        (259, SHORT, 1, _shorts(1)),
        (262, SHORT, 1, _shorts(32803)),
        (271, ASCII, 5, b"Test\0"),
        (272, ASCII, 4, b"Cam\0"),
        (273, LONG, 1, "mosaic"),
        (277, SHORT, 1, _shorts(1)),
        (278, LONG, 1, _longs(height)),
        (279, LONG, 1, _longs(len(mosaic))),
        (33421, SHORT, 2, _shorts(2, 2)),
        (33422, BYTE, 4, bytes([0, 1, 1, 2])),
        (50706, BYTE, 4, bytes([1, 4, 0, 0])),
        (50708, ASCII, 9, b"Test Cam\0"),
        (50714, LONG, 1, _longs(0)),
        (50717, LONG, 1, _longs(4095)),
        (50721, SRATIONAL, 9, _rationals("i", (1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1))),
        (50728, RATIONAL, 3, _rationals("I", (1, 1), (1, 1), (1, 1))),
    ]
    ifds = [raw_ifd]
    if preview is not None:
        buffer = io.BytesIO()
        preview.convert("RGB").save(buffer, "JPEG", quality=90)
        blobs["jpeg"] = buffer.getvalue()
        ifds.append(
            [
                (254, LONG, 1, _longs(1)),
                (256, LONG, 1, _longs(preview.width)),
                (257, LONG, 1, _longs(preview.height)),
                (258, SHORT, 3, _shorts(8, 8, 8)),
                (259, SHORT, 1, _shorts(7)),
                (262, SHORT, 1, _shorts(6)),
                (273, LONG, 1, "jpeg"),
                (277, SHORT, 1, _shorts(3)),
                (278, LONG, 1, _longs(preview.height)),
                (279, LONG, 1, _longs(len(blobs["jpeg"]))),
            ]
        )
    ifd_offsets, offset = [], 8
    for entries in ifds:
        ifd_offsets.append(offset)
        offset += 2 + 12 * len(entries) + 4
    extra, placed = bytearray(), {}

    def place(key, blob: bytes) -> None:
        if len(extra) % 2:
            extra.append(0)
        placed[key] = offset + len(extra)
        extra.extend(blob)

    for index, entries in enumerate(ifds):  # values longer than 4 bytes live after the IFDs
        for tag, _, _, value in entries:
            if isinstance(value, bytes) and len(value) > 4:
                place((index, tag), value)
    for key, blob in blobs.items():
        place(key, blob)
    out = bytearray(b"II*\0" + _longs(ifd_offsets[0]))
    for index, entries in enumerate(ifds):
        out += _shorts(len(entries))
        for tag, kind, count, value in sorted(entries, key=lambda entry: entry[0]):
            if isinstance(value, str):
                value = _longs(placed[value])
            elif len(value) > 4:
                value = _longs(placed[(index, tag)])
            out += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
        out += _longs(ifd_offsets[index + 1] if index + 1 < len(ifds) else 0)
    assert len(out) == offset
    return bytes(out + extra)
