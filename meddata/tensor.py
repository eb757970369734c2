"""The tensor cell: one Arrow struct that holds every payload (images, volumes, signals, video).

A cell is ``{data: large_binary, codec: string, dtype: string, shape: list<int32>}``. ``data`` is
either the raw little-endian array bytes (``raw``), those bytes zstd-compressed (``zstd``), or an
encoded file kept as the source shipped it (``png``, ``jpeg``, ``jpeg2000``, ``mp4``). ``dtype``
and ``shape`` always describe the decoded array, so a reader knows the size before decoding.
"""

from __future__ import annotations

import io
import os
from typing import Any, TypedDict

import numpy as np
import pyarrow as pa

from meddata.errors import MeddataError

TENSOR_TYPE = pa.struct(
    [
        pa.field("data", pa.large_binary(), nullable=False),
        pa.field("codec", pa.string(), nullable=False),
        pa.field("dtype", pa.string(), nullable=False),
        pa.field("shape", pa.list_(pa.int32()), nullable=False),
    ]
)
ARRAY_CODECS = ("raw", "zstd")
IMAGE_CODECS = ("png", "jpeg", "jpeg2000")
CODECS = (*ARRAY_CODECS, *IMAGE_CODECS, "mp4")


class TensorCell(TypedDict):
    """One tensor cell as a Python dict (the row form of ``TENSOR_TYPE``)."""

    data: bytes | memoryview | pa.Buffer
    codec: str
    dtype: str
    shape: list[int]


class TensorDecodeError(MeddataError):
    """A tensor cell's bytes cannot be decoded into the array its header describes."""


def encode(array: np.ndarray, codec: str = "zstd", *, level: int = 3) -> TensorCell:
    """Encode a NumPy array into a tensor cell with ``codec`` (raw, zstd, png or jpeg)."""
    array = np.asarray(array, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    dtype, shape = array.dtype.name, [int(s) for s in array.shape]
    data: bytes | memoryview
    if codec == "raw":
        # A copy on purpose: Arrow can keep a zero-copy memoryview's array alive for good.
        data = array.tobytes()
    elif codec == "zstd":
        import zstandard  # only zstd cells need it

        data = zstandard.ZstdCompressor(level=level).compress(array.tobytes())
    elif codec in ("png", "jpeg"):
        data = _encode_image(array, codec)
    else:
        raise MeddataError(
            f"Cannot encode with codec {codec!r}.",
            f"Use one of raw, zstd, png, jpeg; keep {codec} bytes with from_encoded().",
        )
    return {"data": data, "codec": codec, "dtype": dtype, "shape": shape}


def from_encoded(data: bytes | memoryview, codec: str, dtype: str, shape: list[int]) -> TensorCell:
    """Wrap bytes already encoded by the source (a PNG or JPEG file) without re-encoding them."""
    if codec not in CODECS:
        raise MeddataError(f"Unknown codec {codec!r}.", f"Use one of {', '.join(CODECS)}.")
    return {"data": data, "codec": codec, "dtype": dtype, "shape": [int(s) for s in shape]}


def decode(cell: TensorCell | dict[str, Any]) -> np.ndarray:
    """Decode a tensor cell into a NumPy array; ``raw`` cells are zero-copy views of the buffer."""
    codec, dtype, shape = cell["codec"], np.dtype(cell["dtype"]), tuple(cell["shape"])
    data = cell["data"]
    try:
        if codec == "raw":
            array = np.frombuffer(data, dtype=dtype)
        elif codec == "zstd":
            expected = int(np.prod(shape)) * dtype.itemsize  # bounds memory on hostile cells
            import zstandard

            raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=expected)
            array = np.frombuffer(raw, dtype=dtype)
        elif codec in IMAGE_CODECS:
            array = _decode_image(data, codec)
        elif codec == "mp4":
            raise TensorDecodeError(
                "Decoding mp4 cells needs the video reader.",
                "Install meddata's video extra (PyAV).",
            )
        else:
            raise TensorDecodeError(
                f"Unknown codec {codec!r} in a tensor cell.",
                "The data is corrupt or newer than this meddata; upgrade meddata.",
            )
        return array.reshape(shape) if array.shape != shape else array
    except TensorDecodeError:
        raise
    except Exception as exc:  # decoders raise many types; the user needs one clear error
        raise TensorDecodeError(
            f"Tensor cell with codec {codec} could not be decoded ({type(exc).__name__}).",
            "The shard is corrupt: run `meddata validate` on the dataset.",
        ) from exc


def decode_scalar(scalar: pa.StructScalar) -> np.ndarray:
    """Decode one cell taken from an Arrow column, without copying ``raw`` data."""
    data = scalar["data"]
    buf = data.as_buffer() if isinstance(data, pa.LargeBinaryScalar) else data.as_py()
    return decode(
        {
            "data": memoryview(buf) if isinstance(buf, pa.Buffer) else buf,
            "codec": scalar["codec"].as_py(),
            "dtype": scalar["dtype"].as_py(),
            "shape": scalar["shape"].as_py(),
        }
    )


def to_arrow(cells: list[TensorCell | None]) -> pa.StructArray:
    """Build an Arrow column of tensor cells. Cells whose bytes were read back to back into
    one :class:`CellBuffer` become the column without being copied."""
    try:
        if not cells or any(c is None for c in cells):
            raise TypeError("null cells")  # the general path handles nulls
        datas = [c["data"] for c in cells]  # type: ignore[index]
        data = _buffer_slices_array(datas)
        if data is None:
            data = pa.array(
                [memoryview(d) if isinstance(d, pa.Buffer) else d for d in datas],
                pa.large_binary(),
            )
        children = [
            data,
            pa.array([c["codec"] for c in cells], pa.string()),  # type: ignore[index]
            pa.array([c["dtype"] for c in cells], pa.string()),  # type: ignore[index]
            pa.array([c["shape"] for c in cells], pa.list_(pa.int32())),  # type: ignore[index]
        ]
        if any(child.null_count for child in children):
            raise TypeError("a cell field is null")
        return pa.StructArray.from_arrays(children, fields=list(TENSOR_TYPE))
    except (KeyError, TypeError, pa.ArrowException):
        # Anything unusual (nulls, malformed cells) goes through Arrow's own conversion, which
        # either handles it or raises its usual error.
        cells = [
            {**c, "data": memoryview(c["data"])}
            if isinstance(c, dict) and isinstance(c.get("data"), pa.Buffer)
            else c
            for c in cells
        ]
        return pa.array(cells, type=TENSOR_TYPE)


class CellBuffer:
    """One contiguous, preallocated buffer that several cells' bytes are read into (e.g. the
    pixel data of a batch of files), so that :func:`to_arrow` makes their column without a
    copy. The cells hold read-only ``pyarrow.Buffer`` slices of it."""

    def __init__(self, capacity: int) -> None:
        self._buffer = pa.allocate_buffer(max(1, capacity))
        self._view = memoryview(self._buffer).cast("B")
        self._used = 0

    def read(self, fd: int, offset: int, size: int) -> pa.Buffer | None:
        """Read ``size`` bytes at ``offset`` of file descriptor ``fd``; None when they do not
        fit or the file ends first (nothing is kept then)."""
        start = self._used
        if size < 0 or start + size > len(self._view):
            return None
        target = self._view[start : start + size]
        done = 0
        while done < size:
            got = os.preadv(fd, [target[done:]], offset + done)
            if got <= 0:
                return None
            done += got
        self._used += size
        return self._buffer.slice(start, size)

    def drop_last(self, piece: pa.Buffer) -> None:
        """Give back ``piece`` when it is the last one read (its cell is not used after all)."""
        if piece.address + piece.size == self._buffer.address + self._used:
            self._used -= piece.size


def _buffer_slices_array(datas: list[Any]) -> pa.LargeBinaryArray | None:
    """The values as one binary array over their common buffer when they are ``pa.Buffer``
    slices lying back to back in it; else None."""
    if not all(isinstance(d, pa.Buffer) and d.parent is not None for d in datas):
        return None
    parent = datas[0].parent
    start = datas[0].address
    offsets = np.empty(len(datas) + 1, np.int64)
    offsets[0] = 0
    end = start
    for i, d in enumerate(datas):
        if d.address != end or d.parent.address != parent.address:
            return None
        end += d.size
        offsets[i + 1] = end - start
    values = parent.slice(start - parent.address, end - start)
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(datas), [None, pa.py_buffer(offsets), values]
    )


# What PIL writes, per codec: dtype → channel counts (a trailing channel axis of 1 is dropped).
_IMAGE_LAYOUTS: dict[str, dict[np.dtype[Any], tuple[int, ...]]] = {
    "png": {np.dtype(np.uint8): (1, 2, 3, 4), np.dtype(np.uint16): (1,)},
    "jpeg": {np.dtype(np.uint8): (1, 3)},
}


def _encode_image(array: np.ndarray, codec: str) -> bytes:
    from PIL import Image

    plane = array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array
    channels = 1 if plane.ndim == 2 else (plane.shape[2] if plane.ndim == 3 else 0)
    allowed = _IMAGE_LAYOUTS[codec].get(array.dtype, ())
    if channels not in allowed or plane.size == 0:
        kinds = "; ".join(
            f"{dt.name} with {'/'.join(map(str, ch))} channel(s)"
            for dt, ch in _IMAGE_LAYOUTS[codec].items()
        )
        raise MeddataError(
            f"A {codec} cell cannot hold a {array.dtype} array of shape {tuple(array.shape)}.",
            f"{codec} holds non-empty H×W or H×W×C images: {kinds}. Use codec zstd for others.",
        )
    buf = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(plane))
    if codec == "png":
        image.save(buf, format="PNG", compress_level=1)
    else:
        image.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _decode_image(data: bytes | memoryview, codec: str) -> np.ndarray:
    if codec == "jpeg2000":
        import openjpeg

        return np.asarray(openjpeg.decode(bytes(data)))
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)
