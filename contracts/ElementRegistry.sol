// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IElementRegistry, RecordId} from "./interfaces/IElementRegistry.sol";
import {
    PackedCommitment, PackedCommitmentLibrary, PackedRecord, PackedRecordLibrary
} from "./libraries/PackedRecord.sol";

/// @title ElementRegistry
/// @notice A neutral registry of claims about AI model components. See {IElementRegistry}.
/// @dev Deployed through the canonical CREATE2 deployer with a zero salt, so it has the same address on
/// every EVM chain. It has no owner and no upgrade path; nothing in it can be changed by anyone but the
/// yank flag of a record by its publisher.
contract ElementRegistry is IElementRegistry {
    /// @inheritdoc IElementRegistry
    uint256 public constant override MAX_PARENTS = 127;

    /// @inheritdoc IElementRegistry
    uint256 public constant override MAX_SPDX_LENGTH = 128;

    /// @inheritdoc IElementRegistry
    uint256 public constant override COMMITMENT_EXPIRY = 255;

    /// @inheritdoc IElementRegistry
    uint8 public constant override COMMERCIAL_USE = 1;
    /// @inheritdoc IElementRegistry
    uint8 public constant override DERIVATIVES = 2;
    /// @inheritdoc IElementRegistry
    uint8 public constant override SHARE_ALIKE = 4;
    /// @inheritdoc IElementRegistry
    uint8 public constant override ATTRIBUTION = 8;

    uint8 private constant _ALL_FLAGS = 15;

    /// @inheritdoc IElementRegistry
    bytes32 public constant override RECORD_TYPEHASH = keccak256(
        "Record(address publisher,bytes32 contentId,uint8 cidCodec,bytes32 cidDigest,uint32 licenseId,uint8 kind,bytes32[] parents)"
    );

    /// @inheritdoc IElementRegistry
    bytes32 public constant override PUBLISH_TYPEHASH = keccak256(
        "Publish(Record record,uint256 nonce,uint256 deadline)"
        "Record(address publisher,bytes32 contentId,uint8 cidCodec,bytes32 cidDigest,uint32 licenseId,uint8 kind,bytes32[] parents)"
    );

    /// @inheritdoc IElementRegistry
    bytes32 public constant override COMMIT_TYPEHASH =
        keccak256("Commit(bytes32 commitment,uint256 nonce,uint256 deadline)");

    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant _NAME_HASH = keccak256("ElementRegistry");
    bytes32 private constant _VERSION_HASH = keccak256("1");

    uint8 private constant _CODEC_CIDV0 = 0;
    uint8 private constant _CODEC_RAW = 0x55;
    uint8 private constant _CODEC_DAG_PB = 0x70;

    /// @dev The upper bound of s in a non-malleable secp256k1 signature (EIP-2).
    uint256 private constant _HALF_CURVE_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// @dev Number of built-in licence term sets (ids 1 to 14, added by the constructor).
    uint32 private constant _BUILTIN_LICENSES = 14;

    /// @dev Flags of the built-in term sets, byte i holding the flags of licence id i (byte 0 unused):
    ///
    ///   id  licence                        flags                          byte
    ///    1  CC0-1.0                        commercial derivatives         0x03
    ///    2  MIT                            commercial derivatives attrib  0x0b
    ///    3  Apache-2.0                     commercial derivatives attrib  0x0b
    ///    4  BSD-3-Clause                   commercial derivatives attrib  0x0b
    ///    5  CC-BY-4.0                      commercial derivatives attrib  0x0b
    ///    6  CC-BY-SA-4.0                   commercial deriv. share attrib 0x0f
    ///    7  CC-BY-NC-4.0                   derivatives attrib             0x0a
    ///    8  CC-BY-NC-SA-4.0                derivatives share-alike attrib 0x0e
    ///    9  CC-BY-ND-4.0                   commercial attrib              0x09
    ///   10  GPL-3.0-only                   commercial deriv. share attrib 0x0f
    ///   11  AGPL-3.0-only                  commercial deriv. share attrib 0x0f
    ///   12  OpenRAIL-M                     commercial deriv. share attrib 0x0f
    ///   13  LicenseRef-Llama-Community     commercial deriv. share attrib 0x0f
    ///   14  LicenseRef-Proprietary         (none)                         0x00
    ///
    /// Reading a built-in licence's flags from this constant saves a cold storage read (2,100 gas) per
    /// licence per publish; the constructor stores the same flags from this constant.
    uint256 private constant _BUILTIN_FLAGS = 0x000f0f0f0f090e0a0f0b0b0b0b0300;

    /// @dev A licence term set in storage. `registered` and `flags` share a slot, so one read checks both.
    struct License {
        uint8 flags;
        bool registered;
        string spdxId;
    }

    mapping(RecordId recordId => PackedRecord) private _records;
    mapping(uint32 licenseId => License) private _licenses;
    mapping(bytes32 termsHash => uint32 licenseId) private _licenseIdByTerms;
    mapping(address publisher => uint256) private _nonces;
    mapping(address publisher => PackedCommitment) private _commitments;
    uint32 private _licenseCount;

    bytes32 private immutable _cachedDomainSeparator;
    uint256 private immutable _cachedChainId;

    constructor() {
        _cachedChainId = block.chainid;
        _cachedDomainSeparator = _buildDomainSeparator();
        _addLicense("CC0-1.0", _builtinFlags(1));
        _addLicense("MIT", _builtinFlags(2));
        _addLicense("Apache-2.0", _builtinFlags(3));
        _addLicense("BSD-3-Clause", _builtinFlags(4));
        _addLicense("CC-BY-4.0", _builtinFlags(5));
        _addLicense("CC-BY-SA-4.0", _builtinFlags(6));
        _addLicense("CC-BY-NC-4.0", _builtinFlags(7));
        _addLicense("CC-BY-NC-SA-4.0", _builtinFlags(8));
        _addLicense("CC-BY-ND-4.0", _builtinFlags(9));
        _addLicense("GPL-3.0-only", _builtinFlags(10));
        _addLicense("AGPL-3.0-only", _builtinFlags(11));
        _addLicense("OpenRAIL-M", _builtinFlags(12));
        _addLicense("LicenseRef-Llama-Community", _builtinFlags(13));
        _addLicense("LicenseRef-Proprietary", _builtinFlags(14));
    }

    // ---------------------------------------------------------------------------------------------
    // Publishing
    // ---------------------------------------------------------------------------------------------

    /// @inheritdoc IElementRegistry
    function publish(RecordInput calldata input) external override returns (RecordId recordId) {
        recordId = _recordId(msg.sender, input);
        _publish(msg.sender, input, recordId, 0);
    }

    /// @inheritdoc IElementRegistry
    function publishBatch(RecordInput[] calldata inputs) external override returns (RecordId[] memory recordIds) {
        uint256 count = inputs.length;
        recordIds = new RecordId[](count);
        for (uint256 i; i < count; ++i) {
            RecordId recordId = _recordId(msg.sender, inputs[i]);
            _publish(msg.sender, inputs[i], recordId, 0);
            recordIds[i] = recordId;
        }
    }

    /// @inheritdoc IElementRegistry
    function publishSigned(
        RecordInput calldata input,
        address publisher,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external override returns (RecordId recordId) {
        if (block.timestamp > deadline) revert ExpiredSignature(deadline);
        uint256 currentNonce = _nonces[publisher];
        if (nonce != currentNonce) revert InvalidAccountNonce(publisher, currentNonce);
        recordId = _recordId(publisher, input);
        bytes32 structHash = keccak256(abi.encode(PUBLISH_TYPEHASH, recordId, nonce, deadline));
        _checkSignature(_hashTypedData(structHash), signature, publisher);
        // A nonce cannot reach 2**256 - 1: each step costs a transaction.
        unchecked {
            _nonces[publisher] = currentNonce + 1;
        }
        _publish(publisher, input, recordId, 0);
    }

    /// @inheritdoc IElementRegistry
    function commitRecordIds(bytes32 commitment) external override {
        _commitments[msg.sender] = PackedCommitmentLibrary.pack(commitment, block.number, false);
    }

    /// @inheritdoc IElementRegistry
    function commitSigned(
        address publisher,
        bytes32 commitment,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external override {
        if (block.timestamp > deadline) revert ExpiredSignature(deadline);
        uint256 currentNonce = _nonces[publisher];
        if (nonce != currentNonce) revert InvalidAccountNonce(publisher, currentNonce);
        bytes32 structHash = keccak256(abi.encode(COMMIT_TYPEHASH, commitment, nonce, deadline));
        _checkSignature(_hashTypedData(structHash), signature, publisher);
        // A nonce cannot reach 2**256 - 1: each step costs a transaction.
        unchecked {
            _nonces[publisher] = currentNonce + 1;
        }
        _commitments[publisher] = PackedCommitmentLibrary.pack(commitment, block.number, true);
    }

    /// @inheritdoc IElementRegistry
    function revealCommitment(bytes32 salt, RecordInput[] calldata inputs) external override {
        _reveal(msg.sender, salt, inputs, false);
    }

    /// @inheritdoc IElementRegistry
    function revealOne(bytes32 salt, RecordInput calldata input) external override {
        PackedCommitment word = _commitments[msg.sender];
        uint256 age;
        // As in {_reveal}: an absent commitment reads as block 0, never a later block than this one.
        unchecked {
            age = block.number - word.blockNumber();
        }
        RecordId recordId = _recordId(msg.sender, input);
        _publish(msg.sender, input, recordId, age);
        _checkCommitment(word, msg.sender, _commitmentOfOne(msg.sender, salt, recordId), false);
    }

    /// @inheritdoc IElementRegistry
    function revealCommitmentFor(address publisher, bytes32 salt, RecordInput[] calldata inputs) external override {
        _reveal(publisher, salt, inputs, msg.sender != publisher);
    }

    /// @inheritdoc IElementRegistry
    function yank(RecordId recordId) external override {
        PackedRecord word = _records[recordId];
        if (!word.exists()) revert UnknownRecord(recordId);
        address publisher = word.publisher();
        if (publisher != msg.sender) revert NotPublisher(recordId, publisher, msg.sender);
        if (word.yanked()) return;
        _records[recordId] = word.withYanked();
        emit RecordYanked(recordId, publisher);
    }

    /// @inheritdoc IElementRegistry
    function addLicense(string calldata spdxId, uint8 flags) external override returns (uint32 licenseId) {
        return _addLicense(spdxId, flags);
    }

    // ---------------------------------------------------------------------------------------------
    // Reading
    // ---------------------------------------------------------------------------------------------

    /// @inheritdoc IElementRegistry
    function commitments(address publisher)
        external
        view
        override
        returns (bytes32 commitment, uint40 blockNumber, bool relayable)
    {
        PackedCommitment word = _commitments[publisher];
        return (word.digest(), word.blockNumber(), word.relayable());
    }

    /// @inheritdoc IElementRegistry
    function commitmentOf(address publisher, bytes32 salt, RecordId[] calldata recordIds)
        external
        pure
        override
        returns (bytes32)
    {
        return _commitmentOf(publisher, salt, recordIds);
    }

    /// @inheritdoc IElementRegistry
    function records(RecordId[] calldata recordIds) external view override returns (RecordState[] memory states) {
        uint256 count = recordIds.length;
        states = new RecordState[](count);
        for (uint256 i; i < count; ++i) {
            PackedRecord word = _records[recordIds[i]];
            states[i] = RecordState({
                publisher: word.publisher(),
                licenseId: word.licenseId(),
                blockNumber: word.blockNumber(),
                kind: word.kind(),
                cidCodec: word.cidCodec(),
                parentCount: word.parentCount(),
                yanked: word.yanked(),
                inherited: uint8(word.inherited()),
                priorityBlock: word.priorityBlock()
            });
        }
    }

    /// @inheritdoc IElementRegistry
    function recordIdOf(address publisher, RecordInput calldata input) external pure override returns (RecordId) {
        return _recordId(publisher, input);
    }

    /// @inheritdoc IElementRegistry
    function licenseCount() external view override returns (uint32) {
        return _licenseCount;
    }

    /// @inheritdoc IElementRegistry
    function licenses(uint32[] calldata licenseIds) external view override returns (LicenseTerms[] memory terms) {
        uint256 count = licenseIds.length;
        terms = new LicenseTerms[](count);
        for (uint256 i; i < count; ++i) {
            License storage license = _licenses[licenseIds[i]];
            terms[i] = LicenseTerms({spdxId: license.spdxId, flags: license.flags});
        }
    }

    /// @inheritdoc IElementRegistry
    function licenseIdOf(string calldata spdxId, uint8 flags) external view override returns (uint32) {
        return _licenseIdByTerms[_termsHash(spdxId, flags)];
    }

    /// @inheritdoc IElementRegistry
    function nonces(address publisher) external view override returns (uint256) {
        return _nonces[publisher];
    }

    /// @inheritdoc IElementRegistry
    function DOMAIN_SEPARATOR() external view override returns (bytes32) {
        return _domainSeparator();
    }

    /// @inheritdoc IElementRegistry
    function eip712Domain()
        external
        view
        override
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        return (hex"0f", "ElementRegistry", "1", block.chainid, address(this), bytes32(0), new uint256[](0));
    }

    // ---------------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------------

    /// @dev The one place a record is created; every entry point goes through it. Publishing an
    /// existing record returns early: its input was checked when it was first published.
    ///
    /// The licence rule, parent by parent in id order. A parent of another publisher binds the child
    /// with its own terms ({_checkDerivative}); a parent of the child's own publisher binds it only with
    /// the restrictions that parent inherited from other publishers ({_checkInherited}). The child
    /// inherits what binds it: that is the rule "a record respects every restriction of another
    /// publisher's record anywhere in its ancestry, unless that publisher re-licensed the work in one
    /// of their own records on the way" computed from the parents alone (docs/contract.md proves it).
    ///
    /// `priorityDelta` is 0 for a record published directly (an existing record is then returned
    /// as it is), else how many blocks ago the commitment it is revealed from was made (an existing
    /// record then reverts: a commitment is used once, for new records only).
    function _publish(address publisher, RecordInput calldata input, RecordId recordId, uint256 priorityDelta) private {
        if (_records[recordId].exists()) {
            if (priorityDelta != 0) revert RecordExists(recordId);
            return;
        }

        // Each field is read (and validated) once.
        bytes32 contentId = input.contentId;
        bytes32 cidDigest = input.cidDigest;
        uint8 kind = input.kind;
        if (contentId == bytes32(0)) revert ZeroContentId();
        if (cidDigest == bytes32(0)) revert ZeroCidDigest();
        uint8 cidCodec = input.cidCodec;
        uint256 codecClass;
        if (cidCodec == _CODEC_RAW) codecClass = 1;
        else if (cidCodec == _CODEC_DAG_PB) codecClass = 2;
        else if (cidCodec != _CODEC_CIDV0) revert UnsupportedCidCodec(cidCodec);
        uint32 licenseId = input.licenseId;
        uint8 licenseFlags = _licenseFlags(licenseId);

        RecordId[] calldata parents = input.parents;
        uint256 parentCount = parents.length;
        if (parentCount > MAX_PARENTS) revert TooManyParents(parentCount, MAX_PARENTS);
        RecordId previous;
        uint256 inherited;
        for (uint256 i; i < parentCount; ++i) {
            RecordId parentId = parents[i];
            if (RecordId.unwrap(parentId) <= RecordId.unwrap(previous)) revert ParentsNotAscending(i, parentId);
            previous = parentId;
            PackedRecord parent = _records[parentId];
            if (!parent.exists()) revert UnknownParent(parentId);
            if (parent.publisher() != publisher) {
                inherited |= _checkDerivative(parentId, parent.licenseId(), licenseId, licenseFlags);
            } else {
                uint256 carried = parent.inherited();
                if (carried != 0) _checkInherited(parentId, parent.licenseId(), carried, licenseId, licenseFlags);
                inherited |= carried;
            }
        }

        _records[recordId] = PackedRecordLibrary.pack(
            publisher,
            licenseId,
            // 36 bits hold the block numbers of 2,177 years at one block a second; see PackedRecord.
            block.number,
            priorityDelta,
            kind,
            codecClass,
            inherited,
            parentCount
        );
        emit RecordPublished(recordId, contentId, publisher, cidCodec, cidDigest, licenseId, kind, parents);
    }

    /// @dev Reveals `inputs` from `publisher`'s commitment and publishes them with its block as their
    /// priority block. `relayed`: the caller is not the publisher, so the commitment must be one the
    /// publisher signed ({commitSigned}).
    function _reveal(address publisher, bytes32 salt, RecordInput[] calldata inputs, bool relayed) private {
        PackedCommitment word = _commitments[publisher];
        uint256 age;
        // A commitment's block is a past or the current block of this chain, never a later one (and
        // an absent commitment reads as block 0); the age is checked below, after the records.
        unchecked {
            age = block.number - word.blockNumber();
        }
        // Records are published as their ids are computed, in one pass; the commitment is compared
        // with the ids afterwards, and a mismatch reverts the whole reveal, records included.
        uint256 count = inputs.length;
        RecordId[] memory recordIds = new RecordId[](count);
        for (uint256 i; i < count; ++i) {
            RecordId recordId = _recordId(publisher, inputs[i]);
            recordIds[i] = recordId;
            _publish(publisher, inputs[i], recordId, age);
        }
        _checkCommitment(word, publisher, _commitmentOfMemory(publisher, salt, recordIds), relayed);
    }

    /// @dev Reverts unless `word` is `publisher`'s live commitment `commitment` (and, when `relayed`,
    /// one anyone may reveal), 1 to {COMMITMENT_EXPIRY} blocks old.
    function _checkCommitment(PackedCommitment word, address publisher, bytes32 commitment, bool relayed) private view {
        if (!word.holds(commitment)) revert UnknownCommitment(publisher, commitment);
        if (relayed && !word.relayable()) revert CommitmentNotRelayable(publisher);
        uint256 committedAt = word.blockNumber();
        uint256 age;
        // A commitment's block is a past or the current block of this chain, never a later one.
        unchecked {
            age = block.number - committedAt;
        }
        if (age == 0) revert CommitmentTooRecent(committedAt);
        if (age > COMMITMENT_EXPIRY) revert CommitmentExpired(committedAt, committedAt + COMMITMENT_EXPIRY);
    }

    /// @dev {_commitmentOf} over a single record id.
    function _commitmentOfOne(address publisher, bytes32 salt, RecordId recordId) private pure returns (bytes32 commitment) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, recordId)
            let idsHash := keccak256(ptr, 0x20)
            mstore(ptr, publisher)
            mstore(add(ptr, 0x20), salt)
            mstore(add(ptr, 0x40), idsHash)
            commitment := keccak256(ptr, 0x60)
        }
    }

    /// @dev The commitment over `recordIds`: keccak256(abi.encode(publisher, salt, keccak256(ids packed))).
    function _commitmentOf(address publisher, bytes32 salt, RecordId[] calldata recordIds)
        private
        pure
        returns (bytes32 commitment)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            let size := shl(5, recordIds.length)
            calldatacopy(ptr, recordIds.offset, size)
            let idsHash := keccak256(ptr, size)
            mstore(ptr, publisher)
            mstore(add(ptr, 0x20), salt)
            mstore(add(ptr, 0x40), idsHash)
            commitment := keccak256(ptr, 0x60)
        }
    }

    /// @dev {_commitmentOf} over ids in memory.
    function _commitmentOfMemory(address publisher, bytes32 salt, RecordId[] memory recordIds)
        private
        pure
        returns (bytes32 commitment)
    {
        assembly ("memory-safe") {
            let idsHash := keccak256(add(recordIds, 0x20), shl(5, mload(recordIds)))
            let ptr := mload(0x40)
            mstore(ptr, publisher)
            mstore(add(ptr, 0x20), salt)
            mstore(add(ptr, 0x40), idsHash)
            commitment := keccak256(ptr, 0x60)
        }
    }

    /// @dev Reverts when a child under `childLicenseId` may not derive from `parentId` under
    /// `parentLicenseId`, published by another account; returns the restrictions the child inherits
    /// from that parent (whose publisher is their originator).
    function _checkDerivative(RecordId parentId, uint32 parentLicenseId, uint32 childLicenseId, uint8 childFlags)
        private
        view
        returns (uint256 restrictions)
    {
        uint8 parentFlags = _licenseFlags(parentLicenseId);
        if (parentFlags & DERIVATIVES == 0) revert DerivativesNotAllowed(parentId, parentLicenseId);
        if (parentFlags & COMMERCIAL_USE == 0) {
            if (childFlags & COMMERCIAL_USE != 0) {
                revert CommercialUseNotAllowed(parentId, parentLicenseId, childLicenseId);
            }
            restrictions = PackedRecordLibrary.INHERITS_NON_COMMERCIAL;
        }
        if (parentFlags & SHARE_ALIKE != 0) {
            if (parentLicenseId != childLicenseId) revert ShareAlikeRequired(parentId, parentLicenseId, childLicenseId);
            restrictions |= PackedRecordLibrary.INHERITS_SHARE_ALIKE;
        }
    }

    /// @dev Reverts when a child under `childLicenseId` breaks a restriction that its parent, published
    /// by the same account, inherited from another publisher. A parent that inherits non-commercial is
    /// itself non-commercial, and one that inherits share-alike is under the very term set the
    /// restriction requires (each was checked when it was published), so the parent's licence names
    /// what is required.
    function _checkInherited(
        RecordId parentId,
        uint32 parentLicenseId,
        uint256 carried,
        uint32 childLicenseId,
        uint8 childFlags
    ) private pure {
        if (carried & PackedRecordLibrary.INHERITS_NON_COMMERCIAL != 0 && childFlags & COMMERCIAL_USE != 0) {
            revert InheritedCommercialUseNotAllowed(parentId, parentLicenseId, childLicenseId);
        }
        if (carried & PackedRecordLibrary.INHERITS_SHARE_ALIKE != 0 && parentLicenseId != childLicenseId) {
            revert InheritedShareAlikeRequired(parentId, parentLicenseId, childLicenseId);
        }
    }

    /// @dev The flags of a licence term set; reverts when it does not exist.
    function _licenseFlags(uint32 licenseId) private view returns (uint8) {
        if (licenseId != 0 && licenseId <= _BUILTIN_LICENSES) return _builtinFlags(licenseId);
        License storage license = _licenses[licenseId];
        if (!license.registered) revert UnknownLicense(licenseId);
        return license.flags;
    }

    function _builtinFlags(uint32 licenseId) private pure returns (uint8) {
        return uint8(_BUILTIN_FLAGS >> (uint256(licenseId) * 8));
    }

    /// @dev The one place a licence term set is created.
    function _addLicense(string memory spdxId, uint8 flags) private returns (uint32 licenseId) {
        _checkLicenseIdentifier(spdxId);
        if (flags & ~_ALL_FLAGS != 0) revert InvalidLicenseFlags(flags);
        bytes32 termsHash = _termsHash(spdxId, flags);
        licenseId = _licenseIdByTerms[termsHash];
        if (licenseId != 0) return licenseId;
        licenseId = ++_licenseCount;
        _licenses[licenseId] = License({flags: flags, registered: true, spdxId: spdxId});
        _licenseIdByTerms[termsHash] = licenseId;
        emit LicenseAdded(licenseId, termsHash, spdxId, flags);
    }

    function _checkLicenseIdentifier(string memory spdxId) private pure {
        bytes memory text = bytes(spdxId);
        uint256 length = text.length;
        if (length == 0 || length > MAX_SPDX_LENGTH) revert InvalidLicenseIdentifier(spdxId);
        for (uint256 i; i < length; ++i) {
            bytes1 char = text[i];
            if (char < 0x20 || char > 0x7e) revert InvalidLicenseIdentifier(spdxId);
        }
    }

    function _termsHash(string memory spdxId, uint8 flags) private pure returns (bytes32) {
        return keccak256(abi.encode(spdxId, flags));
    }

    /// @dev The EIP-712 struct hash of `Record(publisher, input...)`, hashed in scratch memory past the
    /// free memory pointer so that a batch does not grow memory with every record.
    function _recordId(address publisher, RecordInput calldata input) private pure returns (RecordId recordId) {
        // Reading the fields through Solidity validates them (a dirty uint8 reverts).
        bytes32 typeHash = RECORD_TYPEHASH;
        bytes32 contentId = input.contentId;
        uint8 cidCodec = input.cidCodec;
        bytes32 cidDigest = input.cidDigest;
        uint32 licenseId = input.licenseId;
        uint8 kind = input.kind;
        RecordId[] calldata parents = input.parents;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            let size := shl(5, parents.length)
            calldatacopy(ptr, parents.offset, size)
            let parentsHash := keccak256(ptr, size)
            mstore(ptr, typeHash)
            mstore(add(ptr, 0x20), publisher)
            mstore(add(ptr, 0x40), contentId)
            mstore(add(ptr, 0x60), cidCodec)
            mstore(add(ptr, 0x80), cidDigest)
            mstore(add(ptr, 0xa0), licenseId)
            mstore(add(ptr, 0xc0), kind)
            mstore(add(ptr, 0xe0), parentsHash)
            recordId := keccak256(ptr, 0x100)
        }
    }

    function _checkSignature(bytes32 digest, bytes calldata signature, address publisher) private pure {
        if (signature.length != 65) revert InvalidSignature();
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 0x20))
            v := byte(0, calldataload(add(signature.offset, 0x40)))
        }
        if (uint256(s) > _HALF_CURVE_ORDER || (v != 27 && v != 28)) revert InvalidSignature();
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert InvalidSignature();
        if (signer != publisher) revert InvalidSigner(signer, publisher);
    }

    function _hashTypedData(bytes32 structHash) private view returns (bytes32 digest) {
        bytes32 domainSeparator = _domainSeparator();
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, hex"1901")
            mstore(add(ptr, 0x02), domainSeparator)
            mstore(add(ptr, 0x22), structHash)
            digest := keccak256(ptr, 0x42)
        }
    }

    /// @dev The cached separator, rebuilt only after a chain split changes the chain id.
    function _domainSeparator() private view returns (bytes32) {
        if (block.chainid == _cachedChainId) return _cachedDomainSeparator;
        return _buildDomainSeparator();
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(_DOMAIN_TYPEHASH, _NAME_HASH, _VERSION_HASH, block.chainid, address(this)));
    }
}
