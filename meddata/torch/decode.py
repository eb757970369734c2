"""Decoding payload cells in loader workers, straight from Arrow buffers.

A row group's tensor column is read once; each cell's bytes are a zero-copy slice of the
column's data buffer. Images become fixed-size uint8 arrays in one pass: PNG/JPEG decode with
Pillow (JPEG uses DCT-domain downscaling when the target is smaller), deeper pixel data is
windowed to 8 bits, then resized with an antialiasing filter.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from meddata.tensor import TensorDecodeError, decode


@dataclass
class CellColumn:
    """A column of tensor cells with per-row access that copies no pixel bytes."""

    data: memoryview
    offsets: np.ndarray
    codec: list[str]
    dtype: list[str]
    shape: list[list[int]]

    @classmethod
    def from_arrow(cls, column: pa.ChunkedArray | pa.StructArray) -> CellColumn:
        """Wrap a struct column of tensor cells (one chunk or many)."""
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        data = arr.field("data")
        if not isinstance(data, pa.LargeBinaryArray):
            data = data.cast(pa.large_binary())
        bufs = data.buffers()
        offsets = np.frombuffer(bufs[1], dtype=np.int64)[data.offset : data.offset + len(data) + 1]
        raw = memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")
        return cls(
            data=raw,
            offsets=offsets,
            codec=arr.field("codec").to_pylist(),
            dtype=arr.field("dtype").to_pylist(),
            shape=arr.field("shape").to_pylist(),
        )

    def bytes_of(self, i: int) -> memoryview:
        """The encoded bytes of row ``i`` (a view into the Arrow buffer)."""
        return self.data[int(self.offsets[i]) : int(self.offsets[i + 1])]

    def array(self, i: int) -> np.ndarray:
        """Row ``i`` decoded to its NumPy array (``raw`` cells are views)."""
        return decode(
            {
                "data": self.bytes_of(i),
                "codec": self.codec[i],
                "dtype": self.dtype[i],
                "shape": self.shape[i],
            }
        )


@dataclass(frozen=True)
class Window:
    """How deeper-than-8-bit pixels map to 8 bits: a display window, else the image's range."""

    center: float | None = None
    width: float | None = None
    invert: bool = False


def image_u8(
    cells: CellColumn, i: int, size: int, *, square: str = "squash", window: Window | None = None
) -> np.ndarray:
    """Row ``i`` as a ``size``×``size`` uint8 grayscale image.

    ``square`` is ``squash`` (resize the whole image, aspect not kept, as CheXpert models do)
    or ``crop`` (centre-crop to a square first, the torchxrayvision convention).
    """
    from PIL import Image

    codec = cells.codec[i]
    window = window or Window()
    img: Image.Image
    try:
        if codec in ("png", "jpeg"):
            opened = Image.open(io.BytesIO(cells.bytes_of(i)))
            if codec == "jpeg":
                opened.draft("L", (size, size))
            img = opened
            if img.mode in ("I;16", "I;16B", "I", "F") or window.invert:
                img = Image.fromarray(to_u8(np.asarray(img), window))
            elif img.mode != "L":
                img = img.convert("L")
        else:
            arr = cells.array(i)
            img = Image.fromarray(to_u8(_gray(arr), window))
    except TensorDecodeError:
        raise
    except Exception as exc:
        raise TensorDecodeError(
            f"Tensor cell with codec {codec} could not be decoded ({type(exc).__name__}).",
            "The shard is corrupt: run `meddata validate` on the dataset.",
        ) from exc
    if square == "crop":
        w, h = img.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _gray(arr: np.ndarray) -> np.ndarray:
    """One 2-D plane: colour → luminance, a stack of frames → its first frame."""
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3].astype(np.float32)
        return rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    while arr.ndim > 2:
        arr = arr[0]
    return arr


def to_u8(arr: np.ndarray, window: Window | None = None) -> np.ndarray:
    """Map any numeric 2-D array to uint8 with ``window`` (or the array's own min/max)."""
    window = window or Window()
    if arr.dtype == np.uint8 and not window.invert:
        return arr
    x = arr.astype(np.float32, copy=False)
    if window.center is not None and window.width:
        lo, hi = window.center - window.width / 2, window.center + window.width / 2
    else:
        lo, hi = float(x.min()), float(x.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out = np.clip((x - lo) * scale, 0, 255)
    if window.invert:
        out = 255.0 - out
    return out.astype(np.uint8)


def text_of(column: pa.ChunkedArray | pa.Array, i: int) -> str:
    """Row ``i`` of a string column ('' when null)."""
    value = column[i].as_py()
    return "" if value is None else str(value)
