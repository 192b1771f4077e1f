"""The suite's errors. Every stage raises these, with a message that says what to fix."""

from __future__ import annotations


class MlstagesError(Exception):
    """Base class: an error the user can act on, as opposed to a bug in the suite."""


class InputDataError(MlstagesError, ValueError):
    """The data given to a stage is unusable (empty, unreadable, wrong column, wrong type)."""


class ParameterError(MlstagesError, ValueError):
    """A stage parameter has a value the stage cannot use."""


class ValidationFailed(MlstagesError):
    """Data validation found anomalies and the policy says to fail."""

    def __init__(self, message: str, anomalies: list | None = None) -> None:
        super().__init__(message)
        self.anomalies = list(anomalies or [])


class StorageError(MlstagesError, OSError):
    """Object storage refused or could not complete a request (missing object or bucket, digest
    mismatch, exhausted retries)."""


class StorageNotFound(StorageError, FileNotFoundError):
    """The object, prefix or bucket does not exist."""


class DigestMismatch(StorageError):
    """The bytes read do not have the sha256 digest recorded for them."""


class ObjectExists(StorageError, FileExistsError):
    """A write-once (``if_absent``) write found the name taken by other bytes."""


def object_exists(uri: str, detail: str = "") -> ObjectExists:
    """The one message for a write-once object that is already there, on GCS and on local disk."""
    found = f" ({detail})" if detail else ""
    return ObjectExists(
        f"{uri} already exists{found} and will not be overwritten (if_absent): write under a new "
        "name, or delete it first"
    )


def require_choice(name: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise a ParameterError naming it."""
    if value not in choices:
        raise ParameterError(
            f"parameter {name}={value!r} is not one of: {', '.join(repr(c) for c in choices)}"
        )
    return value


# Values quoted in messages are cut to this many characters: a message travels in logs, reports
# and artifact metadata, and a 20 MB cell must not travel with it.
QUOTED_VALUE_LENGTH = 60


def quoted(value: object, limit: int = QUOTED_VALUE_LENGTH) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters with an ellipsis and the length."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        value = value.item()  # 49.2, not np.float64(49.2)
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text):,} characters)"
