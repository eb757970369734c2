"""The PNG and JPEG files that chest X-ray releases ship: header parsing, the tensor cell
they are stored as unchanged, and the optional strict check (``-O verify=decode``) that finds
damaged images the header cannot show. Pillow drops libjpeg's "corrupt data" warnings, so a
sequential JPEG's entropy-coded data is walked here code by code (every Huffman code valid, no
run past its block, restart markers in order, each scan used up exactly by its blocks)."""

from __future__ import annotations

import functools
import io
import struct
import zlib
from array import array
from typing import Any

import numpy as np

from meddata import tensor
from meddata.errors import MeddataError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


# -O verify: what is checked of each encoded image, and its measured cost (see verify_image).
VERIFY_HELP = (
    "How much of each PNG/JPEG is checked before it is kept. 'header' (default): the header, "
    "PNG chunk CRCs and the JPEG end marker; pixels are not decoded (about 0.03 ms per image). "
    "'decode': every image is decoded strictly (the PNG zlib stream to its checksum; every "
    "Huffman code of a sequential JPEG and each scan's exact length; then a Pillow decode to "
    "the header's shape) and one that fails is quarantined. Cost on one core: about +1.5 ms per "
    "image of the synthetic chexpert-plus source (320x256 PNGs), +5 ms per image of the "
    "synthetic mimic-cxr-jpg source (320x256 JPEGs), +0.1 s per 3056x2544 PNG and +0.3 to "
    "+0.5 s per 3056x2544 JPEG (quality 90 to 95)."
)


class CorruptImage(MeddataError):
    """An image file whose bytes are not a complete, valid PNG or JPEG (its message is the
    quarantine reason: the kind of damage, never pixel or header values)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(
            message,
            hint or "Download the image again from the release; meanwhile it is quarantined.",
        )


def encoded_image(data: bytes, *, verify: bool = False) -> dict[str, Any]:
    """Image-table fields for an encoded PNG or JPEG kept as-is: the header is checked, and with
    ``verify`` the whole image is decoded strictly (``verify_image``); raises ``CorruptImage``."""
    if data[:8] == _PNG_SIGNATURE:
        width, height, depth, color = png_header(data)
        codec, dtype, channels = ("png", *decoded_png_layout(depth, color))
    elif data[:2] == b"\xff\xd8":
        width, height, depth, channels = jpeg_header(data)
        codec, dtype = "jpeg", "uint8"
    else:
        raise CorruptImage("not a PNG or JPEG file (unknown magic bytes)")
    shape = [height, width] if channels == 1 else [height, width, channels]
    if verify:
        verify_image(data, codec, dtype, shape)
    return {
        "pixels": tensor.from_encoded(data, codec, dtype, shape),
        "rows": height,
        "columns": width,
        "frames": 1,
        "samples_per_pixel": 3 if channels >= 3 else 1,
        "photometric_interpretation": "MONOCHROME2" if channels <= 2 else "RGB",
        "bits_stored": depth,
        "source_codec": codec,
    }


def decoded_png_layout(depth: int, color: int) -> tuple[str, int]:
    """(dtype, channels) of a PNG as ``meddata.tensor`` decodes it (with Pillow): 16-bit grey
    stays uint16; 16-bit colour becomes 8 bits per sample, and 16-bit grey+alpha RGBA. The
    cell records the decoded array (SPEC §6), so this is what it says."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color, 1)
    if depth == 16 and color == 0:
        return "uint16", 1
    if depth == 16 and color == 4:
        return "uint8", 4
    return "uint8", channels


def png_header(data: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) of a PNG, after checking every chunk's CRC and
    that the file ends with IEND (so truncated or damaged files are caught without decoding)."""
    view = memoryview(data)
    pos, ihdr = 8, None
    while True:
        if pos + 12 > len(data):
            raise CorruptImage("corrupt PNG: truncated (no IEND chunk)")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            raise CorruptImage("corrupt PNG: truncated inside a chunk")
        if (
            zlib.crc32(view[pos + 4 : pos + 8 + length])
            != struct.unpack_from(">I", data, end - 4)[0]
        ):
            raise CorruptImage("corrupt PNG: a chunk fails its CRC")
        if ctype == b"IHDR":
            ihdr = struct.unpack_from(">IIBB", data, pos + 8)
        elif ctype == b"IEND":
            break
        pos = end
    if ihdr is None or ihdr[0] == 0 or ihdr[1] == 0:
        raise CorruptImage("corrupt PNG: no valid IHDR chunk")
    return int(ihdr[0]), int(ihdr[1]), int(ihdr[2]), int(ihdr[3])


def jpeg_header(data: bytes) -> tuple[int, int, int, int]:
    """(width, height, bits, components) of a JPEG from its SOF marker; checks the EOI marker."""
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise CorruptImage("corrupt JPEG: truncated (no end-of-image marker)")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise CorruptImage("corrupt JPEG: bad marker structure")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _SOF_MARKERS:
            if pos + 10 > len(data):
                break
            bits, height, width, comps = struct.unpack_from(">BHHB", data, pos + 4)
            if height == 0 or width == 0:
                raise CorruptImage("corrupt JPEG: zero image size")
            return int(width), int(height), int(bits), int(comps)
        if marker in (0xDA, 0xD9):
            break
        pos += 2 + length
    raise CorruptImage("corrupt JPEG: no frame header (SOF)")


# -- strict verification of encoded images (-O verify=decode) -----------------------------------
def verify_image(data: bytes, codec: str, dtype: str, shape: list[int]) -> None:
    """Decode a PNG or JPEG strictly; raise ``CorruptImage`` naming the problem.

    Pillow (the decoder ``meddata.tensor`` reads images with) does not report damaged JPEG
    entropy-coded data: libjpeg-turbo only warns ("Corrupt JPEG data: ... extraneous bytes"),
    Pillow drops the warning and returns garbage pixels. So the structure of the data is checked
    first, in full: for a PNG the zlib stream of its IDAT chunks (inflated to its end, so its
    Adler-32 checksum is verified, and to the exact size the header implies); for a baseline or
    extended Huffman JPEG every Huffman code of every scan, coefficient runs within their
    8x8 blocks, restart markers in order and each scan's data used up exactly by its MCUs
    (``jpeg_scan_check``; progressive, lossless and arithmetic-coded JPEGs skip this step).
    Then the image is decoded with Pillow and must have the cell's shape and sample size
    (``decoded_png_layout``). Pillow refuses
    truncated files unless ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is set, which meddata never
    does (nor changes: it is process-wide); ``encoded_image``'s header checks (a PNG's IEND, a
    JPEG's end marker) and the checks above refuse them either way. Damage that
    happens to leave every code valid and the scan's length right (a few per cent of 600-byte
    runs of zeros in the synthetic JPEGs) cannot be detected from the file alone."""
    if codec == "jpeg":
        jpeg_scan_check(data)
    else:
        png_stream_check(data)
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image)
    except Exception as exc:  # decoders raise many types; one reason for the quarantine
        raise CorruptImage(
            f"corrupt {codec.upper()}: could not be decoded ({type(exc).__name__})"
        ) from exc
    if list(array.shape) != shape or array.dtype.itemsize != np.dtype(dtype).itemsize:
        raise CorruptImage(
            f"corrupt {codec.upper()}: decodes to {'x'.join(map(str, array.shape))} "
            f"{array.dtype.name}, not the header's {'x'.join(map(str, shape))} {dtype}"
        )


def png_stream_check(data: bytes) -> None:
    """Inflate a PNG's IDAT stream to its end (checking its Adler-32) and check that it holds
    exactly the filtered rows the header implies, each with a valid filter type. Assumes
    ``png_header`` passed (chunks complete, CRCs right)."""
    pos, idat, ihdr = 8, [], None
    while pos + 12 <= len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if ctype == b"IHDR":
            ihdr = struct.unpack_from(">IIBBBBB", data, pos + 8)
        elif ctype == b"IDAT":
            idat.append(data[pos + 8 : pos + 8 + length])
        elif ctype == b"IEND":
            break
        pos += 12 + length
    if ihdr is None or not idat:
        raise CorruptImage("corrupt PNG: no IHDR or no IDAT chunk")
    width, height, depth, color, _, _, interlace = ihdr
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(b"".join(idat))
    except zlib.error as exc:
        raise CorruptImage("corrupt PNG: damaged compressed image data") from exc
    if not inflater.eof:
        raise CorruptImage("corrupt PNG: compressed image data ends early")
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color)
    if channels is None:
        raise CorruptImage("corrupt PNG: unknown colour type")
    if interlace:
        return  # Adam7 passes: the stream was checked; Pillow's decode checks the rest
    stride = (width * channels * depth + 7) // 8 + 1
    if len(raw) != stride * height:
        raise CorruptImage(
            f"corrupt PNG: image data holds {len(raw)} bytes, the header implies {stride * height}"
        )
    if max(raw[::stride]) > 4:
        raise CorruptImage("corrupt PNG: a row has an unknown filter type")


_EOB = 1024  # AC lookup: the run increment that marks end-of-block (ends any block)


_SCAN_PAD = bytes(4096)  # bytes read past a window's end (more than one MCU can use)


_WINDOW = 1 << 16  # bytes of a scan turned into lookup words at once


_SOF_HUFFMAN = {0xC0, 0xC1}  # baseline and extended sequential, Huffman-coded


# Lookups kept per process: a few JPEG tables (the standard ones and some optimised ones) as
# compact int arrays of 256 KiB each (65,536 C ints; indexing one gives a Python int).
_CACHED_TABLES = 8


@functools.lru_cache(maxsize=_CACHED_TABLES)
def _huffman_lookup(bits: bytes, values: bytes, dc: bool, max_size: int) -> array[int]:
    """A Huffman table as a lookup of the next 16 bits of a scan: 0 for an invalid code; for
    DC ``code length + magnitude size``; for AC ``(code length + size) | increment << 5``, the
    increment of the coefficient index being ``run + 1``, 16 for ZRL or ``_EOB``."""
    # canonical codes cover the 16-bit peeks from 0 upwards without gaps, each 2**(16 - length)
    entries: list[int] = []
    spans: list[int] = []
    k = code = 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            if k >= len(values) or code >= 1 << length:
                raise CorruptImage("corrupt JPEG: invalid Huffman table")
            symbol = values[k]
            k += 1
            if dc:
                entry = length + symbol if symbol <= max_size else 0
            else:
                run, size = symbol >> 4, symbol & 15
                if size == 0:
                    inc = _EOB if run == 0 else 16 if run == 15 else 0
                else:
                    inc = run + 1 if size <= max_size else 0
                entry = (length + size) | inc << 5 if inc else 0
            entries.append(entry)
            spans.append(1 << (16 - length))
            code += 1
        code <<= 1
    table = np.zeros(65536, np.intc)  # peeks past the last code: invalid
    covered = np.repeat(np.array(entries, np.intc), spans)
    table[: len(covered)] = covered
    return array("i", table.tobytes())


@functools.lru_cache(maxsize=_CACHED_TABLES)
def _ac_runs(bits: bytes, values: bytes, max_size: int) -> array[int]:
    """An AC table as a lookup of the next 16 bits that decodes several symbols at once: the
    first symbol, then the ones after it that lie wholly in those 16 bits, up to an EOB. Entry
    ``bits | before_last << 5 | increment << 12``: the bits they use, the index increment of all
    but the last (127 when the first code is invalid: decode one symbol instead) and of all."""
    single = np.frombuffer(_huffman_lookup(bits, values, False, max_size), np.intc).astype(np.int64)
    peek = np.arange(65536, dtype=np.int64)
    valid = single != 0
    used, increment = single & 31, single >> 5
    before_last = np.zeros(65536, np.int64)
    going = valid & (increment < _EOB) & (used < 16)
    while going.any():
        following = single[(peek << np.minimum(used, 16)) & 0xFFFF]
        fits = going & (following != 0) & (used + (following & 31) <= 16)
        before_last = np.where(fits, increment, before_last)
        used = np.where(fits, used + (following & 31), used)
        increment = np.where(fits, increment + (following >> 5), increment)
        going = fits & ((following >> 5) < _EOB) & (used < 16)
    before_last = np.where(valid, before_last, 127)
    return array("i", (used | before_last << 5 | increment << 12).astype(np.intc).tobytes())


def jpeg_scan_check(data: bytes) -> bool:
    """Walk every scan of a sequential Huffman-coded JPEG: every code must be valid, no
    coefficient run may leave its 8x8 block, restart markers must come in order and at the right
    intervals, and each scan's data must hold exactly its MCUs (no bytes left over, none
    missing). Raises ``CorruptImage``; returns False for JPEGs this does not check
    (progressive, lossless, arithmetic-coded), True when checked."""
    n = len(data)
    pos = 2
    tables: dict[int, tuple[bytes, bytes]] = {}
    frame: tuple[int, int, int, dict[int, tuple[int, int]]] | None = None
    restart = 0
    scanned: set[int] = set()
    try:
        while True:
            if pos + 2 > n:
                raise CorruptImage("corrupt JPEG: ends before its end-of-image marker")
            if data[pos] != 0xFF:
                raise CorruptImage("corrupt JPEG: bad marker structure")
            marker = data[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            if marker == 0xD9:
                break
            if marker == 0x01 or 0xD0 <= marker <= 0xD7:
                pos += 2
                continue
            (length,) = struct.unpack_from(">H", data, pos + 2)
            body = data[pos + 4 : pos + 2 + length]
            if marker == 0xD8 or length < 2 or len(body) != length - 2:
                raise CorruptImage("corrupt JPEG: bad marker structure")
            pos += 2 + length
            if marker == 0xC4:
                i = 0
                while i < len(body):
                    bits = body[i + 1 : i + 17]
                    end = i + 17 + sum(bits)
                    if len(bits) != 16 or body[i] >> 4 > 1 or end > len(body):
                        raise CorruptImage("corrupt JPEG: invalid Huffman table")
                    tables[body[i]] = (bytes(bits), bytes(body[i + 17 : end]))
                    i = end
            elif marker in _SOF_HUFFMAN:
                precision, height, width, count = struct.unpack_from(">BHHB", body, 0)
                components = {}
                for c in range(count):
                    ident, hv = body[6 + 3 * c], body[7 + 3 * c]
                    if not (1 <= hv >> 4 <= 4 and 1 <= hv & 15 <= 4):
                        raise CorruptImage("corrupt JPEG: bad sampling factors")
                    components[ident] = (hv >> 4, hv & 15)
                if not components:
                    raise CorruptImage("corrupt JPEG: a frame without components")
                frame = (precision, height, width, components)
            elif 0xC2 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return False
            elif marker == 0xDD:
                (restart,) = struct.unpack_from(">H", body, 0)
            elif marker == 0xDA:
                if frame is None:
                    raise CorruptImage("corrupt JPEG: a scan before the frame header")
                pos = _check_scan(data, pos, body, frame, tables, restart, scanned)
    except (struct.error, IndexError) as exc:
        raise CorruptImage("corrupt JPEG: a marker segment is cut short") from exc
    if frame is None:
        raise CorruptImage("corrupt JPEG: no frame header (SOF)")
    if scanned != set(frame[3]):
        raise CorruptImage("corrupt JPEG: a component has no scan")
    return True


def _check_scan(
    data: bytes,
    pos: int,
    header: bytes,
    frame: tuple[int, int, int, dict[int, tuple[int, int]]],
    tables: dict[int, tuple[bytes, bytes]],
    restart: int,
    scanned: set[int],
) -> int:
    """Check the scan whose entropy-coded data starts at ``pos``; returns where it ends."""
    precision, height, width, components = frame
    hmax = max(h for h, _ in components.values())
    vmax = max(v for _, v in components.values())
    count = header[0]
    if not 1 <= count <= 4:
        raise CorruptImage("corrupt JPEG: bad scan header")
    layout: list[tuple[array[int], array[int], array[int]]] = []
    for i in range(count):
        ident, which = header[1 + 2 * i], header[2 + 2 * i]
        if ident not in components:
            raise CorruptImage("corrupt JPEG: a scan names an unknown component")
        scanned.add(ident)
        dc_key, ac_key = which >> 4, 0x10 | which & 15
        if dc_key not in tables or ac_key not in tables:
            raise CorruptImage("corrupt JPEG: a scan uses an undefined Huffman table")
        lookups = (
            _huffman_lookup(*tables[dc_key], True, precision + 3),
            _huffman_lookup(*tables[ac_key], False, precision + 2),
            _ac_runs(*tables[ac_key], precision + 2),
        )
        h, v = components[ident]
        layout += [lookups] * (1 if count == 1 else h * v)
    if count == 1:  # one component: its own blocks, one per MCU
        h, v = components[header[1]]
        mcus = _ceil(_ceil(width * h, hmax), 8) * _ceil(_ceil(height * v, vmax), 8)
    else:
        mcus = _ceil(width, 8 * hmax) * _ceil(height, 8 * vmax)
    # the entropy-coded data, cut at restart markers (0xFF 0x00 is a stuffed 0xFF data byte)
    parts: list[bytes] = []
    start = i = pos
    expected = 0
    while True:
        j = data.find(b"\xff", i)
        k = j + 1
        while 0 < k < len(data) and data[k] == 0xFF:
            k += 1  # fill bytes before a marker
        if j < 0 or k >= len(data):
            raise CorruptImage("corrupt JPEG: ends inside a scan")
        if data[k] == 0:
            i = k + 1
            continue
        parts.append(data[start:j])
        if not 0xD0 <= data[k] <= 0xD7:
            break
        if data[k] != 0xD0 + expected:
            raise CorruptImage("corrupt JPEG: restart markers out of order")
        expected = (expected + 1) & 7
        start = i = k + 1
    per_part = restart or mcus
    if len(parts) != -(-mcus // per_part):
        raise CorruptImage("corrupt JPEG: wrong number of restart intervals in a scan")
    done = 0
    for part in parts:
        stream = part.replace(b"\xff\x00", b"\xff")
        todo = min(per_part, mcus - done)
        left = len(stream) * 8 - _decode_blocks(stream, layout, todo)
        done += todo
        if left >= 8:
            raise CorruptImage(f"corrupt JPEG: {left // 8} bytes after a scan's last block")
    return j


def _words(stream: bytes, start: int) -> list[int]:
    """The big-endian 32-bit word at each byte of ``stream[start:]`` for ``_WINDOW`` bytes and
    ``_SCAN_PAD`` more (zeros past the stream's end), as ints: a 16-bit peek at any bit is one
    list index and two shifts."""
    piece = stream[start : start + _WINDOW + len(_SCAN_PAD)] + _SCAN_PAD
    b = np.frombuffer(piece, np.uint8).astype(np.uint32)
    words: list[int] = ((b[:-3] << 24) | (b[1:-2] << 16) | (b[2:-1] << 8) | b[3:]).tolist()
    return words


def _decode_blocks(
    stream: bytes,
    layout: list[tuple[array[int], array[int], array[int]]],
    mcus: int,
) -> int:
    """Decode the Huffman codes of ``mcus`` MCUs (``layout``: the lookups of each block of one)
    from ``stream`` (unstuffed); returns the bits they use. The stream is read ``_WINDOW``
    bytes at a time, so a large image needs little memory."""
    nbits = len(stream) * 8
    base = 0  # the byte of the stream at words[0]; ``bit`` counts from it
    words = _words(stream, 0)
    limit = min(nbits, 8 * _WINDOW)
    bit = 0
    for _ in range(mcus):
        for dc_table, ac_table, ac_runs in layout:
            entry = dc_table[(words[bit >> 3] >> (16 - (bit & 7))) & 0xFFFF]
            if not entry:
                raise CorruptImage("corrupt JPEG: an invalid Huffman code in a scan")
            bit += entry
            k = 1
            while k < 64:
                peek = (words[bit >> 3] >> (16 - (bit & 7))) & 0xFFFF
                entry = ac_runs[peek]
                if k + (entry >> 5 & 127) < 64:  # all its symbols lie in this block
                    bit += entry & 31
                    k += entry >> 12
                    continue
                entry = ac_table[peek]
                if not entry:
                    raise CorruptImage("corrupt JPEG: an invalid Huffman code in a scan")
                bit += entry & 31
                k += entry >> 5
            if 64 < k < _EOB:
                raise CorruptImage("corrupt JPEG: coefficients past the end of a block")
        if bit > limit:
            if 8 * base + bit > nbits:
                raise CorruptImage("corrupt JPEG: a scan's data ends before its last block")
            base, bit = base + (bit >> 3), bit & 7
            words = _words(stream, base)
            limit = min(nbits - 8 * base, 8 * _WINDOW)
    return 8 * base + bit


def _ceil(a: int, b: int) -> int:
    return -(-a // b)
