"""Elements: an on-chain registry of composable AI model components.

The Python API (``registry.api``, loaded on first use so ``import registry`` stays cheap)::

    import registry

    published = registry.publish("model.safetensors", license="MIT")
    graph = registry.resolve(published.composition.record_id)
    built = registry.assemble(published.composition.record_id, "rebuilt")
    report = registry.verify("rebuilt", check=True)  # raises registry.VerificationFailedError

the two kinds of id they take and return (``registry.ContentId``, ``registry.RecordId``: ``bytes``
that print as ``0x`` + 64 hex) and the exception hierarchy (``registry.errors``). Layers, each
importing only below (see docs/architecture.md)::

    cli -> provenance -> publish -> compose -> records -> chain -> storage -> formats -> digest

``errors``, ``config``, ``limits`` and ``files`` sit below every layer.
"""

import sys as _sys
import types as _types
import typing as _typing

from .errors import (
    ChainError,
    ConfigError,
    ElementsError,
    InputError,
    IntegrityError,
    NotFoundError,
    ServiceError,
    UnsafeFileError,
    VerificationFailedError,
)

if _typing.TYPE_CHECKING:
    from .api import ContentId, RecordId, assemble, publish, resolve, verify

__all__ = [
    "ChainError",
    "ConfigError",
    "ContentId",
    "ElementsError",
    "InputError",
    "IntegrityError",
    "NotFoundError",
    "RecordId",
    "ServiceError",
    "UnsafeFileError",
    "VerificationFailedError",
    "__version__",
    "assemble",
    "publish",
    "resolve",
    "verify",
]

__version__ = "0.1.0"

_API = ("ContentId", "RecordId", "assemble", "publish", "resolve", "verify")


def __getattr__(name: str) -> _typing.Any:
    # The facade imports every layer when first called: load it on first use, not at import.
    if name in _API:
        from . import api

        names = {public: getattr(api, public) for public in _API}
        globals().update(names)
        return names[name]
    raise AttributeError(f"module 'registry' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


class _Package(_types.ModuleType):
    """The package root, whose ``publish`` is the facade's function although ``registry/publish/``
    is a subpackage: importing a subpackage binds it as an attribute of its parent, which would
    replace the function. The subpackage stays in ``sys.modules`` and every
    ``from registry.publish... import ...`` finds it there; only ``import registry.publish.X as Y``
    (attribute lookups through the root) cannot reach it."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _API and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
