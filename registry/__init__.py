"""Elements: an on-chain registry of composable AI model components.

The Python API (``registry.api``, loaded on first use so ``import registry`` stays cheap)::

    import registry

    published = registry.publish("model.safetensors", license="MIT")
    graph = registry.resolve(published.composition.record_id)
    built = registry.assemble(published.composition.record_id, "rebuilt")
    report = registry.verify("rebuilt", check=True)  # raises registry.VerificationFailed

and the exception hierarchy (``registry.errors``). Layers, each importing only below (see
docs/architecture.md)::

    cli -> provenance -> publish -> compose -> records -> chain -> storage -> formats -> digest

``errors``, ``config``, ``limits`` and ``files`` sit below every layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ChainError,
    ConfigError,
    ElementsError,
    InputError,
    IntegrityError,
    NotFoundError,
    ServiceError,
    UnsafeFileError,
    VerificationFailed,
)

if TYPE_CHECKING:
    from .api import assemble, publish, resolve, verify

__all__ = [
    "ChainError",
    "ConfigError",
    "ElementsError",
    "InputError",
    "IntegrityError",
    "NotFoundError",
    "ServiceError",
    "UnsafeFileError",
    "VerificationFailed",
    "__version__",
    "assemble",
    "publish",
    "resolve",
    "verify",
]

__version__ = "0.1.0"

_API = ("assemble", "publish", "resolve", "verify")


def __getattr__(name: str) -> Any:
    # The facade imports every layer when first called: load it on first use, not at import.
    if name in _API:
        from .api import assemble, publish, resolve, verify

        functions = {"assemble": assemble, "publish": publish, "resolve": resolve, "verify": verify}
        globals().update(functions)
        return functions[name]
    raise AttributeError(f"module 'registry' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
