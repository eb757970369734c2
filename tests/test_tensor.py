"""Tensor cells: every codec round-trips, raw is zero-copy, corrupt cells fail clearly."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from meddata import tensor
from meddata.errors import MeddataError

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


def test_cells_read_into_one_buffer_become_the_column_without_a_copy(tmp_path) -> None:
    arrays = [np.arange(n * 6, dtype=np.int16).reshape(n, 6) for n in (3, 1, 5)]
    path = tmp_path / "pixels.bin"
    path.write_bytes(b"header" + b"".join(a.tobytes() for a in arrays))
    buffer = tensor.CellBuffer(path.stat().st_size)
    cells = []
    with open(path, "rb") as fh:
        offset = 6
        for a in arrays:
            data = buffer.read(fh.fileno(), offset, a.nbytes)
            assert data is not None
            cells.append(tensor.from_encoded(data, "raw", "int16", list(a.shape)))
            offset += a.nbytes
    column = tensor.to_arrow(cells)
    assert column.type == tensor.TENSOR_TYPE
    data_buffer = column.field("data").buffers()[2]
    assert data_buffer.address == cells[0]["data"].address  # the same memory, not a copy
    for i, a in enumerate(arrays):
        np.testing.assert_array_equal(tensor.decode_scalar(column[i]), a)


def test_mixed_and_null_cells_still_make_a_column() -> None:
    buffer = tensor.CellBuffer(64)
    a = np.ones((2, 2), np.uint8)
    with open(__file__, "rb") as fh:
        piece = buffer.read(fh.fileno(), 0, 4)
    assert piece is not None
    mixed = [tensor.from_encoded(piece, "raw", "uint8", [2, 2]), tensor.encode(a, "raw")]
    column = tensor.to_arrow(mixed)
    np.testing.assert_array_equal(tensor.decode_scalar(column[1]), a)
    assert column[0]["data"].as_py() == bytes(piece)
    with_null = tensor.to_arrow([None, tensor.encode(a, "zstd")])
    assert with_null.null_count == 1
    np.testing.assert_array_equal(tensor.decode_scalar(with_null[1]), a)


def test_cell_buffer_refuses_what_does_not_fit_or_is_not_in_the_file(tmp_path) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(b"x" * 10)
    buffer = tensor.CellBuffer(16)
    with open(path, "rb") as fh:
        assert buffer.read(fh.fileno(), 2, 8) is not None
        assert buffer.read(fh.fileno(), 0, 12) is None  # more than is left in the buffer
        assert buffer.read(fh.fileno(), 8, 4) is None  # the file ends first
        last = buffer.read(fh.fileno(), 0, 8)
        assert last is not None
        buffer.drop_last(last)  # given back: the next read takes its place
        again = buffer.read(fh.fileno(), 2, 8)
        assert again is not None and again.address == last.address


@pytest.mark.parametrize(
    ("shape", "dtype", "codec"),
    [((4, 5, 1), np.uint8, "png"), ((4, 5, 2), np.uint8, "png"), ((4, 5, 1), np.uint8, "jpeg")],
)
def test_image_codecs_take_every_layout_they_promise(shape, dtype, codec) -> None:
    a = np.full(shape, 200, dtype=dtype)
    out = tensor.decode(tensor.encode(a, codec))
    assert out.shape == a.shape and out.dtype == a.dtype
    if codec == "png":
        assert np.array_equal(out, a)


@pytest.mark.parametrize(
    ("shape", "dtype", "codec"),
    [
        ((4, 5, 3), np.uint16, "png"),
        ((0, 5), np.uint8, "png"),
        ((4, 5, 4), np.uint8, "jpeg"),
        ((4, 5, 2), np.uint8, "jpeg"),
        ((4, 5), np.float32, "png"),
        ((4, 5), np.uint16, "jpeg"),
    ],
)
def test_image_codecs_refuse_what_they_cannot_hold_with_a_clear_error(shape, dtype, codec) -> None:
    with pytest.raises(MeddataError, match=f"A {codec} cell cannot hold.*Use codec zstd"):
        tensor.encode(np.zeros(shape, dtype=dtype), codec)


def test_zero_dimensional_arrays_keep_their_shape() -> None:
    for codec in ("raw", "zstd"):
        out = tensor.decode(tensor.encode(np.array(3.5), codec))
        assert out.shape == () and out == 3.5
