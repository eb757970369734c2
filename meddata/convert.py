"""``convert``: run an adapter over a source and publish a dataset version."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fnmatch
import hashlib
import json
import os
import posixpath
import re
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meddata import __version__, storage
from meddata.engine import AdapterSpec, default_workers, run_units, run_units_ray
from meddata.errors import (
    MeddataError,
    SourceError,
    SourceNotFoundError,
    StrictModeError,
    UsageError,
)
from meddata.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    Manifest,
    read_manifest,
    write_manifest,
)
from meddata.progress import progress
from meddata.registry import get_adapter
from meddata.schema import get_schema
from meddata.writer import (
    ROW_GROUP_BYTES,
    STAGING_FORMAT,
    TARGET_SHARD_BYTES,
    JournalEntry,
    Staging,
    collect_quarantine,
    published_error,
    sum_deid_counts,
    write_table,
)

if TYPE_CHECKING:
    from meddata.dataset import Dataset

QUARANTINE_PATH = "quarantine/report.jsonl"
# De-identification options every conversion starts from: DICOM dates are shifted by the
# person's offset like text and EHR dates, so intervals across modalities survive.
DEID_DEFAULTS: dict[str, Any] = {"retain_longitudinal_dates": True}


@dataclass
class ConvertSummary:
    """What a conversion produced (also the ``--json`` output of ``meddata convert``)."""

    path: str
    name: str
    version: str
    tables: dict[str, int]
    units: int
    units_resumed: int
    quarantined: int
    quarantine_path: str | None
    seconds: float
    deid: dict[str, Any] | None = None
    deid_key_created: str | None = None  # where a de-identification key was created by this run
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out.update(out.pop("extra"))
        return out


def convert(
    adapter_name: str,
    source: str | Path,
    out: str | Path,
    *,
    options: dict[str, str] | None = None,
    name: str | None = None,
    version: str | None = None,
    workers: int | None = None,
    engine: str = "local",
    strict: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    deid: bool = True,
    deid_key: bytes | str | os.PathLike[str] | None = None,
    deid_options: dict[str, Any] | None = None,
    show_progress: bool | None = None,
    target_shard_bytes: int = TARGET_SHARD_BYTES,
    row_group_bytes: int = ROW_GROUP_BYTES,
) -> ConvertSummary:
    """Convert ``source`` with adapter ``adapter_name`` into ``out/<name>/<version>/``.

    De-identified by default, as by ``meddata convert``. ``deid_key`` is the key (bytes: raw, or
    the hex text of a key file) or a key file's path; without it the key kept beside
    ``out/<name>`` is used, or created there with a warning (keep it secret, reuse it so
    pseudonyms and date shifts stay stable). ``deid=False`` is for releases that are already
    de-identified. ``deid_options`` (see ``meddata.deid.DeidOptions``) go over ``DEID_DEFAULTS``.
    """
    started = time.perf_counter()
    cls = get_adapter(adapter_name)
    source = storage.local_path(source, "The source")
    if not source.exists():
        raise SourceNotFoundError(
            f"The source {source} does not exist.",
            f"Point it at the source ({cls.source_release or cls.name}), or make a sample with "
            f"`meddata sample {cls.name} DEST`.",
        )
    _check_output_place(out, source)
    name = cls.dataset_name if name is None else name
    version = cls.dataset_version if version is None else version
    _check_name_and_version(name, version)
    if not deid and (deid_key is not None or deid_options):
        raise UsageError(
            "deid=False was given together with a deid_key or deid_options.",
            "Leave deid on to de-identify, or pass deid=False alone for a release that is "
            "already de-identified.",
        )
    given_deid_options = dict(deid_options or {})
    if deid:
        from meddata.deid.options import DeidOptions

        # Every option spelled out (a misspelt one is refused here), so a run started from
        # Python and its resume from the CLI record the same options; reference_year (the year
        # ages are counted to) is this year unless given, and recorded like the others.
        deid_options = DeidOptions.from_mapping({**DEID_DEFAULTS, **given_deid_options}).as_dict()
    if engine not in ("local", "ray"):
        raise UsageError(f"Unknown engine {engine!r}.", "Use engine='local' or engine='ray'.")
    options = cls.resolve_options(options or {})
    units = list(cls(str(source), options).discover())
    if not units:
        raise SourceError(
            f"Adapter {cls.name} found nothing to convert in {source}.",
            f"Check that it is the root of the source ({cls.source_release or cls.name}).",
        )
    fs, out_path = storage.open_fs(out)
    if deid and deid_key is None and not storage.is_local(fs):
        from meddata.deid.keys import remote_output_needs_a_key

        raise remote_output_needs_a_key()  # before the store is reached (no credentials yet?)
    root = storage.join(out_path, name, version)
    if not overwrite and fs.exists(storage.join(root, MANIFEST_NAME)):
        raise published_error(storage.url_of(fs, root))  # before a key is made for nothing
    if deid_options is not None and resume and "reference_year" not in given_deid_options:
        # A resumed run counts ages to the year its first run recorded (after New Year it
        # would otherwise be refused as other options).
        staged_year = _staged_reference_year(fs, root)
        if staged_year is not None:
            deid_options = {**deid_options, "reference_year": staged_year}
    key: bytes | None = None
    key_created: str | None = None
    if deid:
        key, key_created = _deid_key(deid_key, str(out), name)
    spec = AdapterSpec(cls, str(source), options, key, deid_options)
    adapter = spec.build()
    fingerprint = _fingerprint(units)
    run = {
        # Units staged by another meddata (other ids, other redaction) must not be mixed in.
        "meddata": __version__,
        "staging_format": STAGING_FORMAT,
        "adapter": cls.name,
        "adapter_version": cls.version,
        "options": adapter.finalize_options(),
        "source_fingerprint": fingerprint,
        # A resumed run must use the same key and options, or pseudonyms would be mixed.
        "deid": None
        if adapter.deid is None
        else {"key": adapter.deid.key_fingerprint, "options": dict(deid_options or {})},
    }
    with storage.exclusive(fs, storage.join(out_path, name, f"{version}.lock")):
        staging = Staging.open(fs, root, run, resume=resume, overwrite=overwrite)
        if not storage.shared_between_processes(fs):
            workers = 1  # e.g. memory://: worker processes would each see their own empty store
        todo = [(seq, u) for seq, u in enumerate(units) if not staging.done(seq, u.fingerprint)]
        redact = _PathRedactor(
            fs,
            quarantine_map_path(storage.join(out_path, name, version), name, version),
            key,
            cls.release_files,
            resume=resume,
        )
        resumed = len(units) - len(todo)

        try:
            with progress(len(units), f"converting {cls.name}", show_progress) as bar:
                bar.advance(resumed)

                def check_strict(entry: JournalEntry) -> None:
                    if strict and entry.quarantine:
                        first = entry.quarantine[0]  # already redacted (staged form)
                        where = f" (its path is in {redact.mapping_url})" if redact.active else ""
                        raise StrictModeError(
                            f"{first['item']}: {first['reason']}.",
                            f"Fix or remove that input{where} and rerun with --overwrite, or rerun "
                            "with --resume and without --strict to quarantine it and go on.",
                        )

                def on_done(entry: JournalEntry) -> None:
                    entry = redact.staged(entry)
                    check_strict(entry)  # before journaling: a resumed --strict run meets it again
                    staging.record(entry)
                    bar.advance()

                for entry in staging.entries():
                    check_strict(entry)  # units staged by an earlier run without --strict
                runner = run_units_ray if engine == "ray" else run_units
                runner(
                    spec,
                    todo,
                    fs,
                    staging.path,
                    workers=workers or default_workers(),
                    on_done=on_done,
                    on_started=_import_publishing_modules,
                )
        except BaseException:
            with contextlib.suppress(Exception):  # the run's own failure is the one to report
                redact.flush()  # the operator's map is whole however the run stops
            raise
        redact.flush()

        entries = staging.entries()
        tables_seen = [t for t in cls.tables if any(t in e.rows for e in entries)]
        tables_seen += sorted({t for e in entries for t in e.rows} - set(tables_seen))
        if not tables_seen:
            reasons = sorted({q["reason"] for q in collect_quarantine(entries)})[:3]
            staging.remove()  # nothing worth resuming: a rerun starts clean
            with contextlib.suppress(OSError):  # and no empty version folder is left behind
                if storage.is_local(fs) and not os.listdir(root):
                    os.rmdir(root)
            where = (
                f" The rejected inputs' paths are in {redact.mapping_url}."
                if redact.active and redact.mapping
                else ""
            )
            raise SourceError(
                f"Every input of {source} was quarantined; nothing was published "
                f"({'; '.join(reasons) or 'no rows'}).",
                "Check that SOURCE is the right release, or rerun with --strict to stop at the "
                f"first bad input.{where}",
            )
        _warn_split_sets_dropped(fs, root)
        # Replacing (--overwrite) or finishing: unpublish first, so no reader ever sees a manifest
        # that points at tables being rewritten.
        for leftover in (MANIFEST_NAME, "tables", "splits", "datasheet", "quarantine"):
            path = storage.join(root, leftover)
            if fs.exists(path):
                fs.rm(path, recursive=True)
        written = {
            t: staging.publish_shards(t)
            if get_schema(t).kind == "payload"
            else write_table(
                fs,
                root,
                t,
                staging.iter_table(t),
                target_shard_bytes=target_shard_bytes,
                row_group_bytes=row_group_bytes,
            )
            for t in tables_seen
        }
        # Staged with paths already replaced; again here (a no-op on ids) as a safety net.
        quarantine = redact(collect_quarantine(entries))
        quarantine += [
            {
                "unit": "",
                "item": f"table {t}",
                "reason": f"{w.duplicates_dropped} row(s) with a duplicate primary key dropped (first kept)",
                "error": "DuplicateKey",
            }
            for t, w in written.items()
            if w.duplicates_dropped and w.schema.kind != "omop"
        ]
        q_sha = _write_quarantine(fs, root, quarantine)
        redact.finish(len(quarantine))
        deid_report = None
        if adapter.deid is not None:
            deid_report = {
                "profile": adapter.deid.profile_summary(),
                "key_fingerprint": adapter.deid.key_fingerprint,
                "counts": sum_deid_counts(entries),
            }
        manifest: Manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": name,
            "version": version,
            "title": cls.title or cls.name,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "adapter": {
                "name": cls.name,
                "version": cls.version,
                "options": adapter.finalize_options(),
            },
            "source": {
                "fingerprint": fingerprint,
                "units": len(units),
                "release": cls.source_release or None,
            },
            "tables": {t: w.manifest_entry() for t, w in written.items()},
            "tasks": {
                "labels": list(cls.label_names),
                "sensitive_attributes": list(cls.sensitive_attributes),
            },
            "splits": {},
            "deid": deid_report,
            "quarantine": {
                "count": len(quarantine),
                "path": QUARANTINE_PATH if quarantine else None,
                "sha256": q_sha,
            },
        }
        from meddata.dataset import Dataset
        from meddata.datasheet import write_dataset_datasheet

        official = _official_split(Dataset(fs, root, manifest)) if "samples" in written else None
        if official is not None:
            manifest["splits"]["official"] = official
        manifest["datasheet"] = write_dataset_datasheet(Dataset(fs, root, manifest))
        write_manifest(fs, root, manifest)
        staging.remove()
        return ConvertSummary(
            path=storage.url_of(fs, root),
            name=name,
            version=version,
            tables={t: w.rows for t, w in written.items()},
            units=len(units),
            units_resumed=resumed,
            quarantined=len(quarantine),
            quarantine_path=storage.url_of(fs, storage.join(root, QUARANTINE_PATH))
            if quarantine
            else None,
            seconds=round(time.perf_counter() - started, 3),
            deid=deid_report,
            deid_key_created=key_created,
        )


def _staged_reference_year(fs: Any, root: str) -> int | None:
    """The de-identification reference_year recorded by the unfinished run staged at ``root``;
    None when there is none (Staging.open still compares the whole run description)."""
    try:
        run = json.loads(fs.cat_file(storage.join(Staging(fs, root).path, "run.json")))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    deid = run.get("deid") if isinstance(run, dict) else None
    options = deid.get("options") if isinstance(deid, dict) else None
    year = options.get("reference_year") if isinstance(options, dict) else None
    return year if isinstance(year, int) and not isinstance(year, bool) else None


def _deid_key(
    given: bytes | str | os.PathLike[str] | None, out: str, name: str
) -> tuple[bytes, str | None]:
    """The key to de-identify with: ``given`` (key bytes, or a key file's path), else the key
    kept beside ``out/<name>``, created there with a warning on the first run. Second: the
    path of a key created now."""
    from meddata.deid.keys import key_beside_output, parse_key, read_key

    if given is None:
        key, path, created = key_beside_output(out, name, stacklevel=5)  # warns at the caller
        return key, str(path) if created else None
    if isinstance(given, bytes):
        return parse_key(given, "deid_key"), None
    return read_key(Path(given)), None


def _import_publishing_modules() -> None:
    """What publishing needs but the workers do not (polars, the datasheet, JSON Schema):
    imported while the workers convert, instead of after them (about 0.4 s)."""
    import jsonschema  # noqa: F401
    import polars  # noqa: F401

    import meddata.dataset  # noqa: F401
    import meddata.datasheet  # noqa: F401
    import meddata.splits  # noqa: F401


_PATHLIKE = re.compile(r"[^\s()'\"]+/[^\s()'\"]+")
_TRAILING = ".,;:!?"
_PATH_ID = re.compile(r"path:[0-9a-f]{32}")
_NOT_A_PATH = re.compile(r"(?i)(?:[-+]?\d+(?:\.\d+)?|null|none|nan|true|false|n/?a)")


class _PathRedactor:
    """Under de-identification, source paths leave the conversion only as keyed ids (folder and
    file names often hold patient names), from the moment a unit is journaled: the staging area
    inside the dataset folder never holds them either. The id → path mapping is written for the
    operator beside the dataset version, never inside it. The adapter's release-level files (its
    CSVs, label files) keep their names, so the report still says which file had the problem."""

    def __init__(
        self,
        fs: Any,
        mapping_path: str,
        key: bytes | None,
        release_files: tuple[str, ...] = (),
        *,
        resume: bool = False,
    ) -> None:
        self.fs, self.mapping_path, self.key = fs, mapping_path, key
        self.mapping_url = storage.url_of(fs, mapping_path)
        self.release_files = release_files
        self.mapping: dict[str, str] = {}
        self._saved: set[str] = set()  # ids already in the file
        self._stale = False  # a resumed map with a cut last line: rewritten whole at the next save
        if self.active and not resume:  # an earlier run's map (and parts): not this run's
            for old in [*self._parts(), mapping_path]:
                if fs.exists(old):
                    fs.rm(old)
        if self.active and resume:  # ids of the units staged so far
            raw = fs.cat_file(mapping_path) if fs.exists(mapping_path) else b""
            self._stale = bool(raw) and not raw.endswith(b"\n")  # a cut line: rewrite it whole
            for part in self._parts():
                raw += b"\n" + fs.cat_file(part)
            for line in raw.decode("utf-8", errors="replace").splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    row = json.loads(line)
                    self.mapping[str(row["id"])] = str(row["path"])
            self._saved = set(self.mapping)

    @property
    def active(self) -> bool:
        return self.key is not None

    def _hash(self, text: str) -> str:
        assert self.key is not None
        from meddata.deid.keys import path_id  # the deid package is imported only when used

        return path_id(self.key, text)

    def _release_file(self, text: str) -> bool:
        """Whether ``text`` matches a release-file pattern, segment by segment (so ``*``
        never spans a ``/``: ``df_*.csv`` does not match ``df_x/Doe^John/a.csv``)."""
        parts = text.split("/")
        return any(
            len(parts) == len(pattern.split("/"))
            and all(map(fnmatch.fnmatchcase, parts, pattern.split("/")))
            for pattern in self.release_files
        )

    def _keep(self, path: str, remember: bool = True) -> str:
        if _PATH_ID.fullmatch(path):
            return path  # already an id (redacting twice changes nothing)
        hashed = self._hash(path)
        if remember:
            self.mapping[hashed] = path
        return hashed

    def _token(self, token: str) -> str:
        """One path-like token of a reason: a keyed id, unless it is a release file or not a
        path at all (``1/0/-1/null``); trailing punctuation stays outside the id."""
        core = token.rstrip(_TRAILING)
        tail = token[len(core) :]
        if all(_NOT_A_PATH.fullmatch(part) for part in core.split("/") if part):
            return token
        if self._release_file(core):
            return token
        return self._keep(core) + tail

    def _text(self, text: str) -> str:
        return _PATHLIKE.sub(lambda m: self._token(m.group()), text)

    def _field(self, value: str, remember: bool = True) -> str:
        """A unit or item: a release file (optionally with ``: detail``) keeps its name and
        has the paths in its detail replaced; anything else is one keyed id (kept in the
        operator's map when ``remember``: only what a quarantine entry names goes there)."""
        if not value or value.startswith("table "):
            return value
        head, sep, detail = value.partition(": ")
        if self._release_file(head):
            return head + sep + self._text(detail)
        return self._keep(value, remember)

    def __call__(self, records: list[dict[str, str]]) -> list[dict[str, str]]:
        """``records`` (quarantine entries) with their paths replaced by ids."""
        if not self.active:
            return records
        out = [
            {
                **r,
                "unit": self._field(r.get("unit", "")),
                "item": self._field(r.get("item", "")),
                "reason": self._text(r["reason"]),
            }
            for r in records
        ]
        self._save()
        return out

    def staged(self, entry: JournalEntry) -> JournalEntry:
        """``entry`` as it may be journaled inside the dataset folder."""
        if not self.active:
            return entry
        return dataclasses.replace(
            entry, key=self._field(entry.key, remember=False), quarantine=self(entry.quarantine)
        )

    def finish(self, quarantined: int) -> None:
        """At publishing: the map is complete, and none is left when nothing was quarantined."""
        if not self.active:
            return
        self._save()
        self.flush()
        if not quarantined and self.fs.exists(self.mapping_path):
            self.fs.rm(self.mapping_path)

    def flush(self) -> None:
        """Make the map one whole file. On an object store the ids of each unit are put as a
        part of their own (``<map>.parts/``, kept across an interruption): here the parts are
        merged into the map and removed. Locally (appended to as it goes) nothing to do."""
        if not self.active or storage.is_local(self.fs) or not self._parts():
            return
        self._write_whole()
        self.fs.rm(self.mapping_path + ".parts", recursive=True)

    def _parts(self) -> list[str]:
        folder = self.mapping_path + ".parts"
        return sorted(self.fs.find(folder)) if self.fs.exists(folder) else []

    def _write_whole(self) -> None:
        body = "".join(
            json.dumps({"id": k, "path": v}) + "\n" for k, v in sorted(self.mapping.items())
        )
        storage.atomic_write_bytes(self.fs, self.mapping_path, body.encode(), mode=0o600)

    def _save(self) -> None:
        """Put the ids not yet saved where the operator finds them (paths can name patients:
        the file is for the operator's eyes only, mode 0600). Locally new lines are appended (a
        cut append loses at most its own line). An object store cannot append, and rewriting
        the whole map per unit grows with the square of the run: there each save is a part of
        its own, merged by :meth:`flush`. A resumed map with a cut last line is rewritten whole
        (a map left by an earlier run that is not resumed was removed when this one started)."""
        new = [k for k in self.mapping if k not in self._saved]
        if not new:
            return
        lines = "".join(json.dumps({"id": k, "path": self.mapping[k]}) + "\n" for k in new)
        if self._stale:
            self._write_whole()
            self._stale = False
        elif not storage.is_local(self.fs):
            part = storage.join(self.mapping_path + ".parts", f"{uuid.uuid4().hex}.jsonl")
            storage.atomic_write_bytes(self.fs, part, lines.encode(), mode=0o600)
        else:
            fd = os.open(self.mapping_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(lines)
        self._saved.update(new)


def quarantine_map_path(root: str, name: str, version: str) -> str:
    """Where the operator's quarantine id → source path map of the dataset version at
    ``root`` (``OUT/<name>/<version>``) lives: beside ``OUT/<name>``, never inside it."""
    out = posixpath.dirname(posixpath.dirname(root.rstrip("/")))
    return storage.join(out, f"{name}-{version}.quarantine-paths.jsonl")


def _warn_split_sets_dropped(fs: Any, root: str) -> None:
    """Split sets made for a version being replaced name its persons: they are not carried
    over to the new tables, so say which ones go."""
    if not fs.exists(storage.join(root, MANIFEST_NAME)):
        return
    try:
        manifest = read_manifest(fs, root, check_schema=False)
    except MeddataError:
        return  # an unreadable old manifest is replaced anyway
    made = [n for n in manifest.get("splits") or {} if n != "official"]
    if made:
        warnings.warn(
            f"The split set(s) {', '.join(made)} of the replaced version were removed with it; "
            "make them again with `meddata split`.",
            stacklevel=3,
        )


def _fingerprint(units: list[Any]) -> str:
    digest = hashlib.sha256()
    for u in units:
        digest.update(f"{u.key}\x1f{u.fingerprint}\n".encode())
    return "sha256:" + digest.hexdigest()


def _write_quarantine(fs: Any, root: str, records: list[dict[str, str]]) -> str | None:
    if not records:
        return None
    body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode("utf-8")
    fs.makedirs(storage.join(root, "quarantine"), exist_ok=True)
    fs.pipe_file(storage.join(root, QUARANTINE_PATH), body)
    return hashlib.sha256(body).hexdigest()


_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def _check_output_place(out: str | Path, source: str | Path) -> None:
    """A local output must be a folder (or not exist yet) and lie outside the source: inside
    it, the next conversion would read the dataset, and its key, as input."""
    fs, path = storage.open_fs(out)
    if not storage.is_local(fs):
        return
    where, src = Path(path).resolve(), Path(source).resolve()
    if where.exists() and not where.is_dir():
        raise UsageError(
            f"The output {out} is a file.", "Give a folder (it is created if missing)."
        )
    if where == src or src in where.parents:
        raise UsageError(
            f"The output {out} is inside the source {source}.",
            "Write the dataset to a folder outside the source.",
        )


def _check_name_and_version(name: str, version: str) -> None:
    """Refuse names the format does not allow before any work is done."""
    if not _NAME.match(name) or ".." in name:
        raise UsageError(
            f"{name!r} cannot name a dataset.",
            "Use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit.",
        )
    if not _VERSION.match(version) or ".." in version:
        raise UsageError(
            f"{version!r} cannot be a dataset version.",
            "Use letters, digits, '.', '_', '+' and '-', e.g. 1.0 or 2026-11.",
        )


def _official_split(ds: Dataset) -> dict[str, Any] | None:
    """The release's own split (``samples.split``) as a named split set with its report, or
    None when the release has none. Persons who cross the release's splits are counted."""
    import polars as pl

    from meddata.splits import official_split

    samples = ds.table("samples").collect()
    if samples.height == 0 or samples.get_column("split").null_count() == samples.height:
        return None
    result = official_split(samples.filter(pl.col("split").is_not_null()), "split")
    return {"path": None, "strategy": result.strategy, "report": result.report}


def parse_options(pairs: list[str]) -> dict[str, str]:
    """Parse ``-O key=value`` pairs."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(
                f"Option {pair!r} is not KEY=VALUE.",
                "Write it as -O KEY=VALUE, e.g. -O files_per_unit=64 for dicom-folder.",
            )
        out[key.strip()] = value.strip()
    return out
