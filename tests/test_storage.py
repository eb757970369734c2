"""storage: the object-store lock's refusals, and which failures read as storage problems."""

from __future__ import annotations

import errno
import os
from typing import Any

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from meddata import storage
from meddata.errors import IncompleteDatasetError


class _ClientError(Exception):
    """What botocore raises: the service's error code in ``response``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


def _translated(code: str, kind: type[OSError] = OSError) -> OSError:
    """As s3fs raises it: a plain OSError caused by the client's error."""
    exc = kind(errno.EIO, "service error")
    exc.__cause__ = _ClientError(code)
    return exc


class _RacingFS(MemoryFileSystem):
    """A store whose conditional create fails as S3 does when two creates race."""

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kw: Any) -> None:
        if mode == "create":
            raise _translated(self.code)
        super().pipe_file(path, value, **kw)


@pytest.mark.parametrize("code", ["ConditionalRequestConflict", "PreconditionFailed"])
def test_a_racing_conditional_create_is_a_busy_lock_not_a_crash(code: str) -> None:
    fs = _RacingFS(skip_instance_cache=True)
    fs.code = code
    with pytest.raises(IncompleteDatasetError, match="Another meddata process"):
        with storage.exclusive(fs, "/bucket/ds/1.0.lock"):
            pass


def test_the_lock_is_released_only_by_its_holder() -> None:
    fs = fsspec.filesystem("memory", skip_instance_cache=True)
    path = "/locks/ds/1.0.lock"
    with storage.exclusive(fs, path):
        assert storage.lock_holder(fs, path).startswith(storage.socket.gethostname())
        with pytest.raises(IncompleteDatasetError):
            with storage.exclusive(fs, path):
                pass
        assert fs.exists(path)  # the refused second holder did not remove it
        # an operator removed it and another thread of this process took it
        other = f"{storage.socket.gethostname()} {os.getpid()} othertoken".encode()
        fs.pipe_file(path, other)
    assert fs.cat_file(path) == other  # the first holder leaves the new lock alone


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_translated("NoSuchBucket", FileNotFoundError), "The bucket named in the URL"),
        (_translated("AccessDenied", PermissionError), "permission denied"),
        (PermissionError(errno.EACCES, "denied"), "permission denied"),
    ],
)
def test_storage_failures_are_one_clear_error(exc: BaseException, expected: str) -> None:
    found = storage.storage_error(exc)
    assert found is not None and expected in found.message


def test_other_failures_are_not_read_as_storage_problems() -> None:
    """A local missing file whose path says "bucket", or a bug raised while a permission
    error was being handled, are not storage problems (a review found both misreported)."""
    assert storage.storage_error(FileNotFoundError(2, "No such file", "/data/my-bucket/x")) is None
    try:
        try:
            raise PermissionError(errno.EACCES, "denied")
        except PermissionError:
            raise KeyError("a bug") from None
    except KeyError as bug:
        assert storage.storage_error(bug) is None
    try:
        try:
            raise PermissionError(errno.EACCES, "denied")
        except PermissionError:
            raise ValueError("a bug")  # noqa: B904 - the implicit context is the point
    except ValueError as bug:
        assert storage.storage_error(bug) is None


class _FlakyReadFS(MemoryFileSystem):
    """A store whose reads fail for a moment (a 503) when the lock is released."""

    fail_reads = False

    def cat_file(self, path: str, start: Any = None, end: Any = None, **kw: Any) -> bytes:
        if self.fail_reads:
            raise OSError(errno.EIO, "service unavailable")
        return bytes(super().cat_file(path, start=start, end=end, **kw))


def test_a_failed_read_at_release_still_releases_the_lock() -> None:
    fs = _FlakyReadFS(skip_instance_cache=True)
    path = "/bucket/ds/1.0.lock"
    with storage.exclusive(fs, path):
        fs.fail_reads = True
    fs.fail_reads = False
    assert not fs.exists(path)  # the next run is not refused
