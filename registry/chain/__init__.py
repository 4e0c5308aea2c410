"""The chain layer: the ElementRegistry contract's bindings, chains, deployment, accounts.

Typical use::

    from registry.chain import connect, Registry, RecordInput, Kind

    chain = connect("memory")                       # or "http://127.0.0.1:8545"
    reg = Registry.deploy(chain, chain.dev_accounts[0])
    lic = reg.license_by_spdx("Apache-2.0")
    rid = reg.publish(RecordInput(content_id, cid, lic.license_id, Kind.ELEMENT))
    reg.records([rid])          # [Record(...)]
    reg.claims(content_id)      # every claim of that content

    reg = open_registry(settings)                    # what commands use (settings -> bound registry)

Modules: ``connection`` (connect: the in-process chain or checked endpoints), ``network`` (Chain:
plain JSON-RPC reads and writes: nonces, fees, estimates, raw sends, receipts; web3 only on ``memory``),
``wire`` (JSON-RPC values checked: quantities, transactions, revert data, receipts),
``reader`` (the one reader of records: view calls and events decoded and checked), ``abi`` (keccak,
addresses, bounded ABI decoding), ``deploy`` (CREATE2, deployments file), ``registry`` (Registry),
``inputs`` (what is sent: RecordInput, commitments, signed publishes), ``licenses`` (term sets, off-chain rules),
``errors`` (exceptions, custom-error decoding), ``accounts`` (keys, keystores), ``cids`` (CID
codec + digest), ``devnet`` (anvil), ``session`` (settings -> registry).
"""

from __future__ import annotations

import importlib

# Each name is imported from its module on first use (PEP 562), not when the package is: a caller
# of `registry.chain.licenses` or `registry.chain.cids` then does not load web3, eth-account and
# eth-tester (over a second), and `from registry.chain import connect` works as before.
_EXPORTS = {
    "accounts": ("account_from_key", "account_from_keystore", "create_keystore", "load_account"),
    "cids": ("join_cid", "split_cid"),
    "deploy": ("Deployment", "deploy_registry", "find_registry", "load_deployments", "registry_address"),
    "errors": (
        "AccountError",
        "CommercialUseNotAllowedError",
        "CommitmentError",
        "DerivativesNotAllowedError",
        "InsufficientFundsError",
        "InvalidLicenseError",
        "InvalidRecordError",
        "LicenseViolationError",
        "NoRegistryError",
        "NotPublisherError",
        "RecordNotFoundError",
        "RegistryRevertError",
        "RpcUnavailableError",
        "ShareAlikeRequiredError",
        "SignatureError",
        "TransactionFailedError",
        "UnknownLicenseError",
        "UnknownNetworkError",
        "UnknownParentError",
        "UnknownRecordError",
        "WrongChainError",
    ),
    "licenses": (
        "ATTRIBUTION",
        "BUILTIN_LICENSES",
        "COMMERCIAL_USE",
        "DERIVATIVES",
        "INHERITS_NON_COMMERCIAL",
        "INHERITS_SHARE_ALIKE",
        "SHARE_ALIKE",
        "LicenseTerms",
        "check_derivative",
        "inherited_restrictions",
    ),
    "connection": ("connect",),
    "network": ("MEMORY", "Chain"),
    "inputs": ("MAX_PARENTS", "Commitment", "RecordInput", "SignedCommit", "SignedPublish", "commitment_of"),
    "registry": ("COMMITMENT_EXPIRY", "Kind", "Record", "Registry", "claim_order", "record_id_of"),
    "session": ("open_chain", "open_registry"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))


__all__ = [
    # chains
    "MEMORY",
    "Chain",
    "connect",
    "open_chain",
    "open_registry",
    # deployment
    "Deployment",
    "deploy_registry",
    "find_registry",
    "load_deployments",
    "registry_address",
    # registry
    "Registry",
    "Record",
    "RecordInput",
    "SignedPublish",
    "SignedCommit",
    "Commitment",
    "COMMITMENT_EXPIRY",
    "commitment_of",
    "claim_order",
    "Kind",
    "MAX_PARENTS",
    "record_id_of",
    "split_cid",
    "join_cid",
    # licences
    "LicenseTerms",
    "BUILTIN_LICENSES",
    "COMMERCIAL_USE",
    "DERIVATIVES",
    "SHARE_ALIKE",
    "ATTRIBUTION",
    "INHERITS_NON_COMMERCIAL",
    "INHERITS_SHARE_ALIKE",
    "check_derivative",
    "inherited_restrictions",
    # accounts
    "load_account",
    "account_from_key",
    "account_from_keystore",
    "create_keystore",
    # errors
    "RegistryRevertError",
    "InvalidRecordError",
    "UnknownParentError",
    "UnknownLicenseError",
    "LicenseViolationError",
    "DerivativesNotAllowedError",
    "CommercialUseNotAllowedError",
    "ShareAlikeRequiredError",
    "UnknownRecordError",
    "NotPublisherError",
    "SignatureError",
    "CommitmentError",
    "InvalidLicenseError",
    "TransactionFailedError",
    "InsufficientFundsError",
    "WrongChainError",
    "NoRegistryError",
    "RpcUnavailableError",
    "UnknownNetworkError",
    "AccountError",
    "RecordNotFoundError",
]
