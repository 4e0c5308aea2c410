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

Modules: ``network`` (connect, Chain: nonces, fees, receipts), ``deploy`` (CREATE2, deployments
file), ``registry`` (Registry, Record, RecordInput), ``licenses`` (term sets, off-chain rules),
``errors`` (exceptions, custom-error decoding), ``accounts`` (keys, keystores), ``cids`` (CID
codec + digest), ``devnet`` (anvil), ``session`` (settings -> registry).
"""

from __future__ import annotations

from .accounts import account_from_key, account_from_keystore, create_keystore, load_account
from .cids import join_cid, split_cid
from .deploy import Deployment, deploy_registry, find_registry, load_deployments, registry_address
from .errors import (
    AccountError,
    CommercialUseNotAllowedError,
    CommitmentError,
    DerivativesNotAllowedError,
    InsufficientFundsError,
    InvalidLicenseError,
    InvalidRecordError,
    LicenseViolation,
    NoRegistryError,
    NotPublisherError,
    RecordNotFoundError,
    RegistryRevert,
    RpcUnavailableError,
    ShareAlikeRequiredError,
    SignatureError,
    TransactionFailed,
    UnknownLicenseError,
    UnknownNetworkError,
    UnknownParentError,
    UnknownRecordError,
    WrongChainError,
)
from .licenses import (
    ATTRIBUTION,
    BUILTIN_LICENSES,
    COMMERCIAL_USE,
    DERIVATIVES,
    INHERITS_NON_COMMERCIAL,
    INHERITS_SHARE_ALIKE,
    SHARE_ALIKE,
    LicenseTerms,
    check_derivative,
    inherited_restrictions,
)
from .network import MEMORY, Chain, connect
from .registry import (
    COMMITMENT_EXPIRY,
    MAX_PARENTS,
    Commitment,
    Kind,
    Record,
    RecordInput,
    Registry,
    SignedCommit,
    SignedPublish,
    claim_order,
    commitment_of,
    record_id_of,
    to_bytes32,
)
from .session import open_chain, open_registry

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
    "to_bytes32",
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
    "RegistryRevert",
    "InvalidRecordError",
    "UnknownParentError",
    "UnknownLicenseError",
    "LicenseViolation",
    "DerivativesNotAllowedError",
    "CommercialUseNotAllowedError",
    "ShareAlikeRequiredError",
    "UnknownRecordError",
    "NotPublisherError",
    "SignatureError",
    "CommitmentError",
    "InvalidLicenseError",
    "TransactionFailed",
    "InsufficientFundsError",
    "WrongChainError",
    "NoRegistryError",
    "RpcUnavailableError",
    "UnknownNetworkError",
    "AccountError",
    "RecordNotFoundError",
]
