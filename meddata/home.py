"""Where datasets are found by name: ``MEDDATA_HOME`` (default ``~/.cache/meddata``)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import fsspec

from meddata import storage
from meddata.errors import DatasetNotFoundError, IncompleteDatasetError
from meddata.manifest import MANIFEST_NAME
from meddata.writer import STAGING


def home() -> Path:
    """The folder where datasets are looked up by name."""
    return Path(os.environ.get("MEDDATA_HOME", "~/.cache/meddata")).expanduser()


def _version_key(text: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[._+-]", text)]


def locate(
    target: str, version: str | None = None, storage_options: dict[str, Any] | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """Find the published version directory for a path, URL or registered dataset name.
    ``storage_options`` go to the fsspec filesystem of a URL (credentials, endpoint).

    A bare name (no separator, no scheme) is a folder here when one exists and holds a
    dataset; otherwise it is looked up in ``MEDDATA_HOME`` (a source folder that shares the
    dataset's name does not hide the converted dataset).
    """
    bare_name = not ("://" in target or os.sep in target or target.startswith("."))
    local_folder = bare_name and Path(target).exists()
    if not bare_name or local_folder:
        fs, path = storage.open_fs(target, **(storage_options or {}))
        found = _version_dir(fs, path, version)
        if found is not None:
            return fs, found
        if not bare_name:
            raise DatasetNotFoundError(*_not_found_at(fs, path, target, version))
    fs, base = storage.open_fs(home() / target)
    found = _version_dir(fs, base, version) if fs.exists(base) else None
    if found is None:
        message, hint = _not_found_message(target, version)
        if local_folder:
            message += f" The folder ./{target} here holds no meddata dataset either."
        raise DatasetNotFoundError(message, hint)
    return fs, found


def _not_found_at(
    fs: fsspec.AbstractFileSystem, path: str, target: str, version: str | None
) -> tuple[str, str]:
    versions = _published_versions(fs, path) if fs.isdir(path) else []
    if version is not None and versions:
        return (
            f"The dataset at {target} has no version {version}.",
            f"Versions there: {', '.join(sorted(versions, key=_version_key))}.",
        )
    return (
        f"No meddata dataset at {target}.",
        "Give the folder that holds meddata.json (or its parent with version folders).",
    )


def _version_dir(fs: fsspec.AbstractFileSystem, path: str, version: str | None) -> str | None:
    if version is None and fs.exists(storage.join(path, MANIFEST_NAME)):
        return path
    if version is not None:
        candidate = storage.join(path, version)
        if _published(fs, candidate):
            return candidate
        _raise_if_incomplete(fs, candidate)
        return None
    if not fs.isdir(path):
        return None
    _raise_if_incomplete(fs, path)
    versions = _published_versions(fs, path)
    if not versions:
        sub_staged = [p for p in fs.ls(path, detail=False) if fs.exists(storage.join(p, STAGING))]
        if sub_staged:
            _raise_if_incomplete(fs, sub_staged[0].rstrip("/"))
        return None
    return storage.join(path, max(versions, key=_version_key))


def _published_versions(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    return [
        p.rstrip("/").rsplit("/", 1)[-1]
        for p in fs.ls(path, detail=False)
        if _published(fs, p.rstrip("/"))
    ]


def _published(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    return bool(fs.exists(storage.join(path, MANIFEST_NAME)))


def _raise_if_incomplete(fs: fsspec.AbstractFileSystem, path: str) -> None:
    if fs.exists(storage.join(path, STAGING)):
        raise IncompleteDatasetError(
            f"The dataset at {storage.url_of(fs, path)} is not published: a conversion of it "
            "(or a replacement with --overwrite) was interrupted or is publishing now.",
            "Re-run the same `meddata convert` command with --resume added (Python: "
            "resume=True) to finish it.",
        )


def _not_found_message(name: str, version: str | None) -> tuple[str, str]:
    from meddata.registry import adapter_for_dataset

    what = f"{name} version {version}" if version else name
    cls = adapter_for_dataset(name)
    if cls is None:
        return (
            f"No dataset called {what} in MEDDATA_HOME ({home()}).",
            "Pass a path or URL, or convert a source with `meddata convert ADAPTER SOURCE -o "
            f"{home()}` (see `meddata list`).",
        )
    release = cls.source_release or cls.name
    url = f" from {cls.source_url}" if cls.source_url else ""
    flag = f" --version {version}" if version else ""
    return (
        f"The dataset {what} is not in MEDDATA_HOME ({home()}).",
        f"Obtain the source ({release}){url}, then run: meddata convert {cls.name} "
        f"/path/to/source -o {home()}{flag}",
    )
