"""The local preprocessed cache: a preset's fixed-size uint8 items in one memory-mapped file.

Layout of one cache entry (``<dir>/<dataset>-<version>-<split>-<splits>-<preset>-<where8>-
<digest16>/``, where ``where8`` starts the SHA-256 of the dataset's location and ``digest16``
that of the key, so two configurations or two copies never share a directory)::

    key.json     what the entry was built from: dataset fingerprint (shard checksums and the
                 selected samples) + the preset's cache options, item shape and count
    items.u8     n × prod(shape) bytes, item i at offset i × prod(shape)
    filled.u8    one byte per item, set once item i is written

The first epoch fills items as workers decode them (workers write disjoint rows); later epochs
read them at memory speed. When the dataset, the selected samples or the preset options change
the key, and so the directory, changes: a stale item is never served, and configurations used
side by side do not wipe each other. An entry is built in a temporary directory and renamed into
place, and ``key.json`` is checked against the digest each time the files are (re)opened (in
each worker, each pass); an entry that is missing or does not match is rebuilt.

Entries that can never be served again are removed when a new entry is built: those with the
same name (dataset, version, split, split set, preset, location) but another dataset
fingerprint (the dataset at that location was converted again since), and temporary
directories of builds that died more than an hour ago. Entries of other presets, options or
copies of the dataset are kept: they are still valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from meddata.errors import MeddataError
from meddata.home import home


def default_cache_dir() -> Path:
    """``$MEDDATA_HOME/cache/torch``."""
    return home() / "cache" / "torch"


class ItemCache:
    """Fixed-size uint8 items by plan position, memory-mapped (opened lazily in each worker)."""

    def __init__(
        self, directory: Path, key: dict[str, Any], n: int, shape: tuple[int, ...]
    ) -> None:
        self.directory = directory
        self.n = n
        self.shape = tuple(int(s) for s in shape)
        self.itemsize = int(np.prod(self.shape))
        self.key = {**key, "n": n, "shape": list(self.shape)}
        self.digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()
        self.directory = directory.with_name(f"{directory.name}-{self.digest[:16]}")
        self._items: np.memmap | None = None
        self._filled: np.memmap | None = None
        self._prepare()

    @classmethod
    def create(
        cls,
        where: str | os.PathLike[str] | bool,
        name: str,
        fingerprint: str,
        preset_key: dict[str, Any],
        n: int,
        shape: tuple[int, ...],
    ) -> ItemCache:
        """The cache entry ``name`` under ``where`` (True: the default directory)."""
        base = default_cache_dir() if where is True else Path(os.fspath(where))  # type: ignore[arg-type]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return cls(base / safe, {"dataset": fingerprint, "preset": preset_key}, n, shape)

    def _valid(self) -> bool:
        """True when the entry's ``key.json`` is this key (and its files are there)."""
        try:
            old = json.loads((self.directory / "key.json").read_text())
        except (OSError, json.JSONDecodeError):
            return False
        return old == {"digest": self.digest, **self.key} and all(
            (self.directory / f).is_file() for f in ("items.u8", "filled.u8")
        )

    def _prepare(self) -> None:
        if self._valid():
            return
        if self.directory.exists():  # damaged or foreign: rebuild it
            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.directory.name}.", dir=self.directory.parent))
        try:
            with open(tmp / "items.u8", "wb") as fh:
                fh.truncate(self.n * self.itemsize)
            with open(tmp / "filled.u8", "wb") as fh:
                fh.truncate(self.n)
            (tmp / "key.json").write_text(
                json.dumps({"digest": self.digest, **self.key}, sort_keys=True)
            )
            os.rename(tmp, self.directory)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not self._valid():  # not another process winning the race: a real failure
                raise
        self._prune_stale()

    def _prune_stale(self) -> None:
        """Remove entries of this name built from another dataset fingerprint, and dead builds."""
        name = self.directory.name[: -len(self.digest[:16]) - 1]
        entry = re.compile(re.escape(name) + r"-[0-9a-f]{16}")
        dead_build = re.compile(r"\." + re.escape(name) + r"-[0-9a-f]{16}\..+")
        for other in self.directory.parent.iterdir():
            if other == self.directory:
                continue
            if entry.fullmatch(other.name):
                try:
                    stale = (
                        json.loads((other / "key.json").read_text())["dataset"]
                        != self.key["dataset"]
                    )
                except (OSError, json.JSONDecodeError, KeyError, TypeError):
                    stale = True  # no readable key: nothing could ever be served from it
            else:
                stale = bool(dead_build.fullmatch(other.name)) and _age(other) > 3600
            if stale:
                shutil.rmtree(other, ignore_errors=True)

    def reopen(self) -> None:
        """Drop the mapped files so the next access re-checks the key and maps them again."""
        self.flush()
        self._items = self._filled = None

    def _open(self) -> tuple[np.memmap, np.memmap]:
        if self._items is None or self._filled is None:
            if not self._valid():
                self._prepare()  # removed or replaced since: rebuild rather than serve it
                if not self._valid():
                    raise MeddataError(
                        f"The cache entry {self.directory} does not match this loader.",
                        "Delete the cache directory, or pass cache=None.",
                    )
            self._items = np.memmap(
                self.directory / "items.u8", np.uint8, "r+", shape=(self.n, *self.shape)
            )
            self._filled = np.memmap(self.directory / "filled.u8", np.uint8, "r+", shape=(self.n,))
        return self._items, self._filled

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_items"] = state["_filled"] = None  # each process maps the files itself
        return state

    def filled(self, idx: np.ndarray) -> np.ndarray:
        """Boolean mask: which of the positions ``idx`` are already cached."""
        return self._open()[1][idx].astype(bool)

    def read(self, idx: np.ndarray) -> np.ndarray:
        """The cached items at positions ``idx`` (a copy, ``[len(idx), *shape]``)."""
        items = self._open()[0]
        order = np.argsort(idx, kind="stable")
        out = np.empty((len(idx), *self.shape), np.uint8)
        out[order] = items[idx[order]]  # sorted reads are sequential on disk
        return out

    def write(self, i: int, item: np.ndarray) -> None:
        """Store item ``i`` (then mark it filled)."""
        items, filled = self._open()
        items[i] = item
        filled[i] = 1

    @property
    def complete(self) -> bool:
        """True once every item is cached."""
        return bool(self._open()[1].all())

    def flush(self) -> None:
        """Flush written pages to the files."""
        if self._items is not None and self._filled is not None:
            self._items.flush()
            self._filled.flush()


def _age(path: Path) -> float:
    """Seconds since ``path`` was last modified (0 when it is gone)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0
