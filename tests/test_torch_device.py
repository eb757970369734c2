"""GPU-decode batches finished on the device (meddata.torch.device), checked on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_planes_of_mixed_shapes_are_squared_like_one_at_a_time() -> None:
    """GPU-decode batches are cropped and resized per shape group; the result must equal
    doing each image alone, in the batch's order (run here on the CPU with decoded planes)."""
    from meddata.torch import transforms as T
    from meddata.torch.device import decode_on_device

    rng = np.random.default_rng(0)
    shapes = [(40, 30), (32, 32), (40, 30), (20, 50), (32, 32), (40, 30)]
    planes = [torch.from_numpy(rng.integers(0, 256, s, dtype=np.uint8)) for s in shapes]
    size = 32
    aug = T.draw_augment(None, len(planes), size, size, False)
    for square in ("crop", "stretch"):
        batch = {"_jpeg": ("image", size, square, [p[None] for p in planes], aug), "_size": size}
        got = decode_on_device(batch, torch.device("cpu"))["image"]
        want = []
        for p in planes:
            img = p[None, None]
            if square == "crop":
                h, w = p.shape
                s = min(h, w)
                img = img[..., (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
            want.append(T.resize(img, size)[0] if img.shape[-2:] != (size, size) else img[0])
        assert got.shape == (len(planes), 1, size, size) and got.dtype == torch.uint8
        assert torch.equal(got, torch.stack(want))
