"""The exception hierarchy of Elements.

Every error the project raises on purpose derives from :class:`ElementsError`, and each
subclass also inherits the matching built-in so callers can catch either::

    ElementsError                         root; ``exit_code`` is what the CLI exits with
    ├── InputError(ValueError)            bad input: a corrupt file, a malformed recipe, a bad flag (2)
    │   └── UnsafeFileError               a file refused by the strict parser
    ├── NotFoundError(LookupError)        an unknown hash, record, CID or block (2)
    ├── IntegrityError(ValueError)        bytes that do not match the hash they were fetched by (2)
    ├── ServiceError(ConnectionError)     a chain, Kubo node or gateway that is down or answers garbage (2)
    ├── ChainError(RuntimeError)          the chain refused something (wrong chain, no registry, revert) (2)
    ├── ConfigError(ValueError)           a bad configuration, key or network name (2)
    └── VerificationFailedError                provenance could not be established (1)

Layers add their own subclasses (``registry.storage.errors``, ``registry.chain.errors`` ...)
under these. Every message names the problem and the fix, on one line.
"""

from __future__ import annotations

__all__ = [
    "ElementsError",
    "InputError",
    "UnsafeFileError",
    "NotFoundError",
    "IntegrityError",
    "ServiceError",
    "ChainError",
    "ConfigError",
    "VerificationFailedError",
]


class ElementsError(Exception):
    """Root of every error Elements raises on purpose."""

    exit_code: int = 2


class InputError(ElementsError, ValueError):
    """The input is malformed or not what the command expects."""


class UnsafeFileError(InputError):
    """A file was refused before any of its data was read (strict parsing)."""


class NotFoundError(ElementsError, LookupError):
    """A hash, record, CID or block is unknown where it was looked for."""


class IntegrityError(ElementsError, ValueError):
    """Bytes do not match the hash they were addressed by."""


class ServiceError(ElementsError, ConnectionError):
    """A chain RPC, Kubo node or gateway is unreachable or answered garbage."""


class ChainError(ElementsError, RuntimeError):
    """The chain refused an operation or is not the chain expected."""


class ConfigError(ElementsError, ValueError):
    """A configuration value, network name or key is wrong."""


class VerificationFailedError(ElementsError):
    """Provenance could not be established; the CLI exits with 1. Raised by
    ``registry.verify(..., check=True)``, with the failed verification's report as ``report``."""

    exit_code = 1
    report: object | None = None
