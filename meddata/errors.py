"""The one error hierarchy of meddata. Every message says what happened and what to do next."""

from __future__ import annotations


class MeddataError(Exception):
    """Base of every error meddata raises on purpose.

    ``hint`` is the next step for the user; the CLI prints it after the message.
    ``exit_code`` is what the CLI exits with (1 invalid data or failed run, 2 usage).
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class UsageError(MeddataError):
    """The call itself is wrong (unknown adapter, bad option value)."""

    exit_code = 2


class SchemaError(MeddataError):
    """A table does not match its schema, or a schema file is malformed."""


class FormatVersionError(MeddataError):
    """A dataset or schema uses a major format version this meddata does not know."""


class DatasetNotFoundError(MeddataError):
    """No published dataset at the given name, path or URL (the argument names none: a usage
    error, as a missing file argument is)."""

    exit_code = 2


class IncompleteDatasetError(MeddataError):
    """A dataset directory exists but was never published (interrupted conversion)."""


class DatasetExistsError(MeddataError):
    """Refusing to overwrite a published, immutable dataset version (the command must say
    another version or ``--overwrite``: a usage error)."""

    exit_code = 2


class SourceError(MeddataError):
    """The raw source does not have the layout the adapter expects."""


class SourceNotFoundError(SourceError):
    """The source path does not exist (the argument names nothing: a usage error)."""

    exit_code = 2


class StrictModeError(MeddataError):
    """An input was unreadable and ``--strict`` asked to stop at the first one."""


class ValidationFailed(MeddataError):
    """``meddata validate`` found problems; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            f"{len(problems)} problem(s) found: " + "; ".join(problems[:5]),
            "Re-run the conversion (the source is unchanged) or restore the listed files.",
        )
        self.problems = problems


class DatasetBusyError(MeddataError):
    """Another process held the dataset version's lock for longer than an amendment waits."""


class DatasetChangedError(MeddataError):
    """The dataset changed (converted again, or amended) after this ``Dataset`` was loaded."""


class StorageError(MeddataError):
    """The storage refused or could not be reached: no credentials, no network, no bucket, no
    permission (see ``meddata.storage.storage_error``)."""
