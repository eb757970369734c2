"""The secret key: loading, creating, fingerprinting and HMAC derivation of every pseudonym."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import warnings
from pathlib import Path

from meddata import storage
from meddata.deid.errors import DeidKeyError
from meddata.errors import UsageError

KEY_BYTES = 32
MIN_KEY_BYTES = 16
KEY_SUFFIX = ".deid-key"


def derive(key: bytes, purpose: str, value: str) -> bytes:
    """HMAC-SHA256 of ``value`` under ``key``, separated by ``purpose`` (domain separation)."""
    msg = purpose.encode() + b"\x00" + value.encode("utf-8", "surrogatepass")
    return hmac.new(key, msg, hashlib.sha256).digest()


def derive_int(key: bytes, purpose: str, value: str) -> int:
    """A 256-bit non-negative integer derived from ``value`` for ``purpose``."""
    return int.from_bytes(derive(key, purpose, value), "big")


def path_id(key: bytes, path: str) -> str:
    """The keyed id that stands for a source path wherever the path itself could name a
    patient (quarantine reports, file names): ``path:`` + 32 hex digits. The operator's own
    id → path map is the only way back."""
    return "path:" + derive(key, "path", path).hex()[:32]


def fingerprint(key: bytes) -> str:
    """A public fingerprint of the key: ``sha256:`` + 16 hex digits of a derived value."""
    digest = hashlib.sha256(derive(key, "fingerprint", "meddata-deid")).hexdigest()
    return "sha256:" + digest[:16]


def generate_key() -> bytes:
    """A fresh random 256-bit key."""
    return secrets.token_bytes(KEY_BYTES)


def read_key(path: Path) -> bytes:
    """Read a key file (hex text, or raw bytes) and check it is long enough."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DeidKeyError(
            f"Cannot read the de-identification key file {path} ({type(exc).__name__}).",
            "Check the key file's path and its permissions.",
        ) from None
    if os.name == "posix" and path.stat().st_mode & 0o077:
        warnings.warn(
            f"The de-identification key file {path} can be read by other users; anyone who "
            f"reads it can link pseudonyms back to patients. Restrict it: chmod 600 {path}",
            stacklevel=2,
        )
    return parse_key(raw, f"key file {path}")


def parse_key(raw: bytes, where: str) -> bytes:
    """A key from its stored form: hex text (as ``write_key`` writes it), or raw bytes.
    ``where`` names it in the error when it is too short."""
    try:
        key = bytes.fromhex(raw.strip().decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = raw
    if len(key) < MIN_KEY_BYTES:
        raise DeidKeyError(
            f"The de-identification key ({where}) has {len(key)} bytes; at least "
            f"{MIN_KEY_BYTES} are needed.",
            "Create one with: head -c 32 /dev/urandom > KEY (and chmod 600 KEY)",
        )
    return key


def write_key(path: Path, key: bytes) -> None:
    """Write ``key`` as hex to a new file readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")


def default_key_path(output_dir: Path) -> Path:
    """Where a generated key goes: beside the output directory (never inside it)."""
    output_dir = Path(output_dir).absolute()
    return output_dir.with_name(output_dir.name + KEY_SUFFIX)


def load_or_create_key(
    key_file: Path | None, output_dir: Path, *, stacklevel: int = 2
) -> tuple[bytes, Path, bool]:
    """Load ``key_file``, or (when None) reuse or create ``<output_dir>.deid-key`` beside the output.

    Returns ``(key, path, created)``; ``created`` is True when a new key was written, and a
    warning is issued so the caller can tell the user to keep the key safe.
    """
    if key_file is not None:
        return read_key(Path(key_file)), Path(key_file), False
    path = default_key_path(Path(output_dir))
    if path.exists():
        return read_key(path), path, False
    key = generate_key()
    write_key(path, key)
    warnings.warn(
        f"No de-identification key was given; a new one was saved beside the output: {path}. "
        "Keep it secret and reuse it to keep pseudonyms stable.",
        stacklevel=stacklevel,  # the warning points at the caller's line (raise it for wrappers)
    )
    return key, path, True


def remote_output_needs_a_key() -> UsageError:
    """The refusal to keep a key beside a remote output (no place there stays private)."""
    return UsageError(
        "A de-identification key is needed for a remote output.",
        "Pass a key (CLI: --deid-key-file KEY, made with: head -c 32 /dev/urandom > KEY; "
        "Python: deid_key=...), or turn de-identification off (--no-deid, deid=False) for a "
        "release that is already de-identified.",
    )


def key_beside_output(out: str, name: str, *, stacklevel: int = 3) -> tuple[bytes, Path, bool]:
    """The key kept beside ``OUT/<name>``: reused, or created (with a warning) on the first run.

    Returns ``(key, path, created)``. A remote ``out`` has no place for it that stays private.
    """
    fs, path = storage.open_fs(out)
    if not storage.is_local(fs):
        raise remote_output_needs_a_key()
    Path(path).mkdir(parents=True, exist_ok=True)
    return load_or_create_key(None, Path(path) / name, stacklevel=stacklevel)
