"""Tensor cells: every codec round-trips, raw is zero-copy, corrupt cells fail clearly."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from meddata import tensor

DTYPES = st.sampled_from([np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64])


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(DTYPES, hnp.array_shapes(min_dims=1, max_dims=4, max_side=9)),
    st.sampled_from(["raw", "zstd"]),
)
def test_array_codecs_round_trip(array: np.ndarray, codec: str) -> None:
    cell = tensor.encode(array, codec)
    out = tensor.decode(cell)
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize(
    ("dtype", "shape"), [(np.uint8, (17, 23)), (np.uint8, (8, 9, 3)), (np.uint16, (17, 23))]
)
def test_png_is_lossless(dtype: type, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)
    np.testing.assert_array_equal(tensor.decode(tensor.encode(array, "png")), array)


def test_jpeg_is_close() -> None:
    array = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    out = tensor.decode(tensor.encode(array, "jpeg"))
    assert out.shape == array.shape and np.abs(out.astype(int) - array).mean() < 3


def test_big_endian_input_is_stored_little_endian() -> None:
    array = np.arange(6, dtype=">u2").reshape(2, 3)
    cell = tensor.encode(array, "raw")
    assert cell["dtype"] == "uint16"
    np.testing.assert_array_equal(tensor.decode(cell), array)


def test_raw_cells_decode_without_copy_from_arrow() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    column = tensor.to_arrow([tensor.encode(array, "raw")])
    out = tensor.decode_scalar(column[0])
    np.testing.assert_array_equal(out, array)
    assert not out.flags.owndata  # a view on the Arrow buffer
    assert column.type == tensor.TENSOR_TYPE


def test_from_encoded_keeps_source_bytes() -> None:
    png = tensor.encode(np.zeros((4, 4), np.uint8), "png")["data"]
    cell = tensor.from_encoded(png, "png", "uint8", [4, 4])
    assert cell["data"] is png
    assert tensor.decode(cell).shape == (4, 4)


def test_corrupt_cell_raises_clear_error() -> None:
    cell = tensor.encode(np.ones((8, 8), np.uint16), "zstd")
    cell["data"] = cell["data"][:-5]
    with pytest.raises(tensor.TensorDecodeError, match="meddata validate"):
        tensor.decode(cell)
    bad_png = {"data": b"\x89PNG garbage", "codec": "png", "dtype": "uint8", "shape": [2, 2]}
    with pytest.raises(tensor.TensorDecodeError):
        tensor.decode(bad_png)


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(tensor.MeddataError):
        tensor.encode(np.zeros(3), "webp")
    with pytest.raises(tensor.MeddataError):
        tensor.from_encoded(b"", "webp", "uint8", [1])


def test_arrow_type_is_the_spec_struct() -> None:
    assert tensor.TENSOR_TYPE.field("data").type == pa.large_binary()
    assert tensor.TENSOR_TYPE.field("shape").type == pa.list_(pa.int32())
