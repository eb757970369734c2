"""Which adapters exist: the built-in ones plus third-party ones from the entry-point group
``meddata.adapters``."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points

from meddata.adapter import Adapter
from meddata.errors import UsageError

ENTRY_POINT_GROUP = "meddata.adapters"

BUILTIN: dict[str, str] = {
    "dicom-folder": "meddata.adapters.dicom_folder:DicomFolderAdapter",
    "chexpert-plus": "meddata.adapters.chexpert_plus:ChexpertPlusAdapter",
    "mimic-cxr-jpg": "meddata.adapters.mimic_cxr_jpg:MimicCxrJpgAdapter",
}


@dataclass(frozen=True)
class AdapterInfo:
    """An adapter's name, where it comes from, and whether it imports."""

    name: str
    target: str
    origin: str
    adapter: type[Adapter] | None
    error: str | None = None

    @property
    def status(self) -> str:
        if self.adapter is None:
            return f"unavailable ({self.error})"
        return self.adapter.status


def _targets() -> dict[str, tuple[str, str]]:
    out = {name: (target, "built-in") for name, target in BUILTIN.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        out.setdefault(ep.name, (ep.value, "plugin"))
    return out


def _import(target: str) -> type[Adapter]:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise TypeError(f"{target} is not a meddata Adapter subclass")
    return cls


def list_adapters() -> list[AdapterInfo]:
    """Every registered adapter, sorted by name; broken plugins are listed with their error."""
    infos = []
    for name, (target, origin) in sorted(_targets().items()):
        try:
            infos.append(AdapterInfo(name, target, origin, _import(target)))
        except Exception as exc:  # a broken plugin must not break `meddata list`
            infos.append(AdapterInfo(name, target, origin, None, f"{type(exc).__name__}: {exc}"))
    return infos


def get_adapter(name: str) -> type[Adapter]:
    """The adapter class registered as ``name``."""
    targets = _targets()
    if name not in targets:
        raise UsageError(
            f"There is no adapter called {name!r}.",
            f"Run `meddata list` to see them ({', '.join(sorted(targets))}).",
        )
    return _import(targets[name][0])


def adapter_for_dataset(dataset_name: str) -> type[Adapter] | None:
    """The built-in or plugin adapter whose default dataset name is ``dataset_name``."""
    for info in list_adapters():
        if info.adapter is not None and info.adapter.dataset_name == dataset_name:
            return info.adapter
    return None
