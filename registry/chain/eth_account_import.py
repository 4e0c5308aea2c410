"""eth-account loaded without computing BLS12-381 pairing tables it never uses for Elements.

eth-account 0.14 imports eth-keyfile 0.10, whose ``keyfile`` module imports, at module level,
``py_ecc.bls.G2ProofOfPossession`` and ``py_ecc.bls12_381.curve_order``: both for EIP-2335
(version 4, BLS) keystores, which Elements neither reads nor writes (its keys are secp256k1). The
two py_ecc 8 packages compute their pairing constants in pure Python when imported: 0.4 s on a quiet
core, more than a second under load, the largest part of every signing command's start-up
(``publish-model`` included).

:func:`load_eth_account` imports eth-account while those two names come from stand-ins: a proxy
that imports the real ``G2ProofOfPossession`` on first use (so a version 4 keystore still works,
only later), and the group order of BLS12-381 as a plain integer (eth-keyfile only subtracts one
from it; ``tests/test_chain_eth_account_import.py`` checks it against py_ecc's). The stand-ins
leave ``sys.modules`` as soon as eth-account is loaded, so whatever imports py_ecc afterwards
(py-evm's precompiles) gets the real modules. When py_ecc's BLS modules are already loaded, or an
eth-keyfile release asks the stand-ins for a name they do not have, eth-account is imported the
ordinary way: slower, never different.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

__all__ = ["BLS12_381_ORDER", "load_eth_account"]

#: The order r of BLS12-381's groups (py_ecc.bls12_381.curve_order).
BLS12_381_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001

_BLS = "py_ecc.bls"
_CURVE = "py_ecc.bls12_381"
_lock = threading.Lock()


class _Deferred:
    """An attribute of a module imported on first use (``bls.SkToPk(...)`` imports py_ecc.bls then)."""

    def __init__(self, module: str, name: str) -> None:
        self._module = module
        self._name = name

    def _target(self) -> Any:
        return getattr(importlib.import_module(self._module), self._name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._target(), attribute)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self._module}.{self._name}, imported on first use>"


def _stand_ins() -> dict[str, types.ModuleType]:
    bls = types.ModuleType(_BLS, "stand-in while eth-account is imported (registry.chain.eth_account_import)")
    bls.__dict__.update(G2ProofOfPossession=_Deferred(_BLS, "G2ProofOfPossession"))
    curve = types.ModuleType(_CURVE, "stand-in while eth-account is imported (registry.chain.eth_account_import)")
    curve.__dict__.update(curve_order=BLS12_381_ORDER)
    return {_BLS: bls, _CURVE: curve}


def load_eth_account() -> types.ModuleType:
    """The ``eth_account`` module, imported without py_ecc's BLS modules where that is possible."""
    loaded = sys.modules.get("eth_account")
    if loaded is not None:
        return loaded
    with _lock:
        if "eth_account" in sys.modules or _BLS in sys.modules or _CURVE in sys.modules:
            return importlib.import_module("eth_account")
        stand_ins = _stand_ins()
        sys.modules.update(stand_ins)
        try:
            return importlib.import_module("eth_account")
        except ImportError:
            pass  # a name the stand-ins lack: the failed modules left sys.modules; import them for real
        finally:
            for name, module in stand_ins.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
        return importlib.import_module("eth_account")
