"""Presets: the tensors a reference model expects, built from one dataset's samples.

A preset has four small steps, each on a whole batch except ``prepare``:

* ``prepare(payload, i)`` — one sample's payload to a fixed-size uint8 array (runs in loader
  workers; its output is what the preprocessed cache stores);
* ``collate(items, rng)`` — stack the items into a batch and apply uint8 augmentation;
* ``finish(batch)`` — uint8 → the model's float input (runs in workers, or on the GPU after the
  copy when ``device="cuda"``);
* ``targets(labels, names)`` — the raw label matrix (1/0/-1/NaN) to ``labels`` + ``label_mask``.

A custom preset is a subclass that sets ``name``, ``key`` and ``payload`` and overrides the steps
it changes; register it with :func:`register_preset` to use it by name::

    class Thumbnails(ImagePreset):
        \"\"\"64×64 grayscale in [0, 1].\"\"\"
        name = "thumb"
        def __init__(self) -> None:
            super().__init__(size=64)
        def finish(self, batch):
            batch["image"] = batch["image"].float() / 255
            return batch

    register_preset(Thumbnails)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import torch

from meddata.errors import UsageError
from meddata.torch import transforms as T
from meddata.torch.decode import CellColumn, Window, image_u8, text_of

Payload = dict[str, Any]  # column name → CellColumn (tensor columns) or pyarrow array
POLICIES = ("ignore", "zeros", "ones", "multiclass")


class Preset:
    """Base class of presets. Subclasses set ``name``, ``key`` and ``payload``."""

    name: ClassVar[str] = ""
    key: ClassVar[str] = "image"
    # (payload table, id column shared with samples, columns read from the payload table)
    payload: ClassVar[tuple[str, str, tuple[str, ...]] | None] = None
    # Presets made for supervised training warn on a dataset without task labels.
    needs_labels: ClassVar[bool] = False

    def item_shape(self) -> tuple[int, ...] | None:
        """The fixed uint8 shape ``prepare`` returns (cacheable), or None when it varies."""
        return None

    def cache_key(self) -> dict[str, Any]:
        """Options that change ``prepare``'s output; part of the cache key."""
        return {"preset": self.name}

    def prepare(self, payload: Payload, i: int) -> Any:
        """Row ``i`` of the payload columns to one item."""
        return None

    def collate(self, items: list[Any], rng: np.random.Generator | None) -> dict[str, Any]:
        """Items to the batch's payload entries; ``rng`` is None when augmentation is off."""
        return {}

    def finish(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Last step, on the batch's device: uint8 → model input."""
        return batch

    def targets(self, labels: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Raw labels ``[B, L]`` (1/0/-1, NaN = not mentioned) to ``(labels, label_mask)``."""
        return uncertainty(labels, "ones")

    @property
    def augmenting(self) -> bool:
        """True when ``collate`` draws random numbers (train-time augmentation)."""
        return False


def uncertainty(
    labels: np.ndarray, policy: str, blank: str = "zeros"
) -> tuple[np.ndarray, np.ndarray]:
    """Apply a CheXpert uncertainty policy to raw labels.

    ``ignore``: -1 → masked out; ``zeros``: -1 → 0; ``ones``: -1 → 1 (U-Ones, the default);
    ``multiclass``: int64 classes 0 negative, 1 positive, 2 uncertain. ``blank`` says what a
    label never mentioned (null) becomes: ``zeros`` (negative, the CheXpert convention) or
    ``ignore`` (masked out).
    """
    if policy not in POLICIES:
        raise UsageError(
            f"Unknown uncertainty policy {policy!r}.", f"Use one of {', '.join(POLICIES)}."
        )
    blank_mask = np.isnan(labels)
    uncertain = labels == -1
    mask = np.ones(labels.shape, np.float32)
    if blank == "ignore":
        mask[blank_mask] = 0
    out = np.where(blank_mask, 0, labels).astype(np.float32)
    if policy == "multiclass":
        classes = np.where(uncertain, 2, out).astype(np.int64)
        return classes, mask
    if policy == "ignore":
        out[uncertain] = 0
        mask[uncertain] = 0
    else:
        out[uncertain] = 1.0 if policy == "ones" else 0.0
    return out, mask


class ImagePreset(Preset):
    """A 2-D image resized to a square, grayscale uint8 until ``finish``.

    ``size`` is the output side; ``resize`` (≥ size) the side stored before cropping (random
    crops when ``augment``, centre crops otherwise); ``square`` is ``squash`` or ``crop``;
    ``hflip`` the flip probability when ``augment``.
    """

    name = "image"
    key = "image"
    payload = (
        "image",
        "image_id",
        ("pixels", "window_center", "window_width", "photometric_interpretation"),
    )

    def __init__(
        self,
        size: int = 224,
        *,
        resize: int | None = None,
        square: str = "squash",
        augment: bool = False,
        hflip: float = 0.5,
    ) -> None:
        if square not in ("squash", "crop"):
            raise UsageError(f"square={square!r} is not valid.", "Use 'squash' or 'crop'.")
        self.size = int(size)
        self.resize = int(resize or size)
        if self.resize < self.size:
            raise UsageError(f"resize={resize} is smaller than size={size}.", "Use resize ≥ size.")
        self.square = square
        self.augment = augment
        self.hflip = hflip
        self.gpu_decode = False  # set by the loader when JPEG decoding runs on the GPU

    @property
    def augmenting(self) -> bool:
        return self.augment

    def item_shape(self) -> tuple[int, ...]:
        return (1, self.resize, self.resize)

    def cache_key(self) -> dict[str, Any]:
        return {
            "preset": self.name,
            "resize": self.resize,
            "square": self.square,
            "kind": "gray-u8",
        }

    def prepare(self, payload: Payload, i: int) -> Any:
        cells: CellColumn = payload["pixels"]
        window = _window(payload, i)
        # The GPU decoder only decodes: a MONOCHROME1 image (shown inverted) is decoded here,
        # where the inversion happens, so both paths give the same picture.
        if self.gpu_decode and cells.codec[i] == "jpeg" and not window.invert:
            return torch.frombuffer(bytearray(cells.bytes_of(i)), dtype=torch.uint8)
        return image_u8(cells, i, self.resize, square=self.square, window=window)[None]

    def collate(self, items: Any, rng: np.random.Generator | None) -> dict[str, Any]:
        n = len(items)
        aug = T.draw_augment(rng if self.augment else None, n, self.resize, self.size, self.hflip)
        if self.gpu_decode and any(isinstance(x, torch.Tensor) for x in items):
            # Planes decoded here (inverted images) may be read-only views: copy those few.
            planes = [
                x if isinstance(x, torch.Tensor) else torch.from_numpy(x[0].copy()) for x in items
            ]
            return {"_jpeg": (self.key, self.resize, self.square, planes, aug), "_size": self.size}
        if isinstance(items, np.ndarray):
            stacked = torch.from_numpy(items)
        elif n and all(x.dtype == np.uint8 for x in items):
            stacked = T.empty((n, *items[0].shape), torch.uint8)
            np.stack(items, out=stacked.numpy())
        elif n:  # a custom prepare() that returns another dtype keeps it
            stacked = torch.from_numpy(np.stack(items))
        else:
            stacked = torch.zeros((0, *self.item_shape()), dtype=torch.uint8)
        return {self.key: T.crop_flip(stacked, self.size, aug)}


def _window(payload: Payload, i: int) -> Window:
    def value(col: str) -> Any:
        arr = payload.get(col)
        return None if arr is None else arr[i].as_py()

    center, width = value("window_center"), value("window_width")
    return Window(center, width, value("photometric_interpretation") == "MONOCHROME1")


class ChexpertPreset(ImagePreset):
    """CheXpert classifiers (DenseNet-121 as in Irvin et al. 2019, torchvision ImageNet weights).

    ``image``: float32 ``[B, 3, 224, 224]``, ImageNet mean/std normalisation (uint8
    ``[B, 1, 224, 224]`` when ``normalize=False``, for normalising later on the GPU).
    ``labels``: float32 ``[B, L]`` (the dataset's labels, 14 for CheXpert Plus) after the
    ``uncertainty`` policy (``ignore|zeros|ones|multiclass``, default ``ones``; ``multiclass``
    gives int64 classes); ``label_mask``: 1 where the label counts in the loss.
    """

    name = "chexpert"
    needs_labels = True

    def __init__(
        self,
        size: int = 224,
        *,
        resize: int | None = None,
        augment: bool = False,
        hflip: float = 0.5,
        uncertainty: str = "ones",
        blank: str = "zeros",
        normalize: bool = True,
    ) -> None:
        super().__init__(size, resize=resize, square="squash", augment=augment, hflip=hflip)
        if uncertainty not in POLICIES:
            raise UsageError(
                f"Unknown uncertainty policy {uncertainty!r}.", f"Use one of {', '.join(POLICIES)}."
            )
        self.uncertainty = uncertainty
        self.blank = blank
        self.normalize = normalize

    def finish(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.normalize and batch[self.key].dtype == torch.uint8:
            batch[self.key] = T.normalize(
                batch[self.key], T.IMAGENET_MEAN, T.IMAGENET_STD, channels=3
            )
        return batch

    def targets(self, labels: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return uncertainty(labels, self.uncertainty, self.blank)


class XrvPreset(ImagePreset):
    """torchxrayvision models (``xrv.models.DenseNet(weights="densenet121-res224-all")``).

    ``image``: float32 ``[B, 1, 224, 224]`` in [-1024, 1024], centre-cropped to a square then
    resized, as ``XRayCenterCrop`` + ``XRayResizer(224)`` do. ``labels``: float32 with NaN for
    uncertain (-1) and unmentioned labels, and every pathology 0 where ``No Finding`` is 1,
    as torchxrayvision's ``CheX_Dataset``; ``label_mask`` is 0 where the label is NaN.
    """

    name = "xrv"
    needs_labels = True

    def __init__(self, size: int = 224, *, augment: bool = False, hflip: float = 0.5) -> None:
        super().__init__(size, square="crop", augment=augment, hflip=hflip)

    def finish(self, batch: dict[str, Any]) -> dict[str, Any]:
        if batch[self.key].dtype == torch.uint8:
            batch[self.key] = T.rescale(batch[self.key], -1024.0, 1024.0)
        return batch

    def targets(self, labels: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        out = np.where(labels == -1, np.nan, labels).astype(np.float32)
        norm = [n.lower().replace("_", " ") for n in names]
        if "no finding" in norm:
            k = norm.index("no finding")
            healthy = out[:, k] == 1
            others = [j for j in range(out.shape[1]) if j != k]
            sub = out[:, others]
            sub[healthy] = 0
            out[:, others] = sub
        mask = (~np.isnan(out)).astype(np.float32)
        return out, mask


class TextPreset(Preset):
    """Report text + labels, for text classifiers (e.g. CheXbert-style BERT labelers).

    ``text``: list of str (the note's ``field``, ``note_text`` by default). With a
    ``tokenizer`` — a picklable callable taking a list of str and returning either a dict of
    tensors (Hugging Face tokenizers with ``return_tensors="pt"``) or lists of token ids —
    the batch also holds ``input_ids`` ``[B, T]`` padded with ``pad_id`` and
    ``attention_mask`` (1 for tokens). Labels as in ``chexpert`` (policy ``uncertainty``).
    """

    name = "text"
    needs_labels = True
    key = "text"
    payload = ("note", "note_id", ("note_text",))

    def __init__(
        self,
        tokenizer: Callable[[list[str]], Any] | None = None,
        *,
        field: str = "note_text",
        max_length: int | None = None,
        pad_id: int = 0,
        uncertainty: str = "ones",
        blank: str = "zeros",
    ) -> None:
        self.tokenizer = tokenizer
        self.field = field
        self.max_length = max_length
        self.pad_id = pad_id
        self.uncertainty = uncertainty
        self.blank = blank
        if field != "note_text":
            self.payload = ("note", "note_id", (field,))  # type: ignore[misc]

    def prepare(self, payload: Payload, i: int) -> str:
        return text_of(payload[self.field], i)

    def collate(self, items: list[Any], rng: np.random.Generator | None) -> dict[str, Any]:
        batch: dict[str, Any] = {"text": list(items)}
        if self.tokenizer is None:
            return batch
        tokens = self.tokenizer(list(items))
        if isinstance(tokens, dict) or hasattr(tokens, "keys"):
            batch.update({k: tokens[k] for k in tokens.keys()})
            return batch
        ids, mask = pad_sequences([list(t)[: self.max_length] for t in tokens], self.pad_id)
        batch.update(input_ids=ids, attention_mask=mask)
        return batch

    def targets(self, labels: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return uncertainty(labels, self.uncertainty, self.blank)


def pad_sequences(seqs: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length id lists → ``(ids [B, T], mask [B, T])`` padded at the end."""
    longest = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), longest), pad, dtype=torch.int64)
    mask = torch.zeros((len(seqs), longest), dtype=torch.int64)
    for k, s in enumerate(seqs):
        ids[k, : len(s)] = torch.as_tensor(s, dtype=torch.int64)
        mask[k, : len(s)] = 1
    return ids, mask


PRESETS: dict[str, type[Preset]] = {
    "image": ImagePreset,
    "chexpert": ChexpertPreset,
    "xrv": XrvPreset,
    "text": TextPreset,
}


def register_preset(cls: type[Preset]) -> type[Preset]:
    """Make ``cls`` available by its ``name`` (usable as a class decorator)."""
    if not cls.name:
        raise UsageError(f"Preset {cls.__name__} has no name.", "Set the class attribute `name`.")
    PRESETS[cls.name] = cls
    return cls


def get_preset(preset: str | Preset | None, **options: Any) -> Preset:
    """A preset instance from a name (with options), an instance, or None (``image``)."""
    if isinstance(preset, Preset):
        if options:
            raise UsageError(
                "Preset options were given with a preset instance.", "Pass them to its constructor."
            )
        return preset
    name = preset or "image"
    if name not in PRESETS:
        raise UsageError(
            f"There is no preset called {name!r}.", f"Known presets: {', '.join(sorted(PRESETS))}."
        )
    try:
        return PRESETS[name](**options)
    except TypeError as exc:
        raise UsageError(
            f"Bad options for preset {name!r}: {exc}.",
            f"See help(meddata.torch.{PRESETS[name].__name__}).",
        ) from None


def arrow_column(table: pa.Table, name: str) -> Any:
    """A payload column in the form presets read: CellColumn for tensor cells, else an array."""
    col = table.column(name)
    if pa.types.is_struct(col.type) and col.type.get_field_index("codec") >= 0:
        return CellColumn.from_arrow(col)
    return col.combine_chunks()
