// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice The id of a record: the EIP-712 struct hash of the whole claim, see {IElementRegistry-recordIdOf}.
/// @dev Because the id commits to every field of the claim (publisher, content id, CID, licence, kind and
/// parents), a client re-derives it from event data to check what it read, and computes it before sending
/// (which is how a batch names parents published earlier in the same batch).
type RecordId is bytes32;

/// @title IElementRegistry
/// @notice A neutral registry of claims about content-addressed AI model components ("elements").
/// A record says: this publisher claims this content (a 32-byte content id), stored at this IPFS CID,
/// under this licence term set, derived from these parent records. Records are immutable except for a
/// yank flag their publisher may set; ids are never reused. There is no owner, no admin, no upgrade
/// path and no fee.
/// @dev Storage holds one packed word per record (what the contract needs to enforce its rules and
/// what a batched view needs to locate the record); the content id, the CID and the parent ids live in
/// the {RecordPublished} event, which is the index. The record id commits to all of them.
interface IElementRegistry {
    // ---------------------------------------------------------------------------------------------
    // Types
    // ---------------------------------------------------------------------------------------------

    /// @notice A claim to publish.
    /// @param contentId The content id of the element (a digest of its tensors, or of a file's bytes).
    /// @param cidCodec The CIDv1 multicodec, 0x55 (raw) or 0x70 (dag-pb); 0 for a CIDv0 (dag-pb).
    /// @param cidDigest The sha2-256 digest inside the CID's multihash.
    /// @param licenseId The licence term set the content is published under (see {licenses}).
    /// @param kind What the content is: 0 element, 1 composition, 2 file (config, tokenizer), 3 adapter;
    /// other values are accepted and left to clients.
    /// @param parents The records this content derives from, in strictly ascending order of id, at most
    /// {MAX_PARENTS}; each must exist when this record is published.
    struct RecordInput {
        bytes32 contentId;
        uint8 cidCodec;
        bytes32 cidDigest;
        uint32 licenseId;
        uint8 kind;
        RecordId[] parents;
    }

    /// @notice What storage holds about a record. A record that does not exist reads as all zeros.
    /// @param publisher The account that made the claim (the signer for a signed publish).
    /// @param licenseId The licence term set of the record.
    /// @param blockNumber The block the record was published in (where its {RecordPublished} event is).
    /// @param priorityBlock The block the record's priority dates from: for a record revealed from a
    /// commitment ({revealCommitment}), the block of that commitment; for one published directly, `blockNumber`.
    /// Clients order claims of the same content by it ("earliest first").
    /// @param kind The kind given at publication.
    /// @param cidCodec The CID codec given at publication (0 for a CIDv0).
    /// @param parentCount The number of parents.
    /// @param yanked Whether the publisher has yanked the record.
    /// @param inherited The restrictions the record inherits from records of other publishers in its
    /// ancestry, which bind every derivative of it whoever publishes that: 1 non-commercial (the record
    /// and its derivatives may not allow commercial use), 2 share-alike (its derivatives must keep its
    /// term set), or both (3). A record inherits a restriction when a record of another publisher
    /// with that term binds it: a parent of another publisher, or, through a parent of its own
    /// publisher, what that parent inherited.
    struct RecordState {
        address publisher;
        uint32 licenseId;
        uint40 blockNumber;
        uint8 kind;
        uint8 cidCodec;
        uint8 parentCount;
        bool yanked;
        uint8 inherited;
        uint40 priorityBlock;
    }

    /// @notice A licence term set: an SPDX licence identifier (or a `LicenseRef-` name) and the flags a
    /// machine checks (see {COMMERCIAL_USE}, {DERIVATIVES}, {SHARE_ALIKE}, {ATTRIBUTION}).
    struct LicenseTerms {
        string spdxId;
        uint8 flags;
    }

    // ---------------------------------------------------------------------------------------------
    // Errors
    // ---------------------------------------------------------------------------------------------

    /// @notice The content id is zero.
    error ZeroContentId();

    /// @notice The CID digest is zero.
    error ZeroCidDigest();

    /// @notice The CID codec is not 0 (CIDv0), 0x55 (raw) or 0x70 (dag-pb).
    error UnsupportedCidCodec(uint8 cidCodec);

    /// @notice No licence term set has this id.
    error UnknownLicense(uint32 licenseId);

    /// @notice A record has more parents than {MAX_PARENTS}.
    error TooManyParents(uint256 count, uint256 max);

    /// @notice Parents are not in strictly ascending order of id (this also refuses duplicates).
    error ParentsNotAscending(uint256 index, RecordId parentId);

    /// @notice A parent record does not exist (yet).
    error UnknownParent(RecordId parentId);

    /// @notice Licence rule: the parent's licence does not allow derivatives.
    error DerivativesNotAllowed(RecordId parentId, uint32 parentLicenseId);

    /// @notice Licence rule: the parent's licence is non-commercial and the child's allows commercial use.
    error CommercialUseNotAllowed(RecordId parentId, uint32 parentLicenseId, uint32 childLicenseId);

    /// @notice Licence rule: the parent's licence is share-alike and the child is not under the same terms.
    error ShareAlikeRequired(RecordId parentId, uint32 parentLicenseId, uint32 childLicenseId);

    /// @notice Licence rule: the parent, published by the same account, inherited a non-commercial
    /// restriction from another publisher's record, and the child's licence allows commercial use.
    error InheritedCommercialUseNotAllowed(RecordId parentId, uint32 parentLicenseId, uint32 childLicenseId);

    /// @notice Licence rule: the parent, published by the same account, inherited a share-alike
    /// restriction from another publisher's record, and the child is not under the parent's term set
    /// (which is the one the restriction requires).
    error InheritedShareAlikeRequired(RecordId parentId, uint32 parentLicenseId, uint32 childLicenseId);

    /// @notice No record has this id.
    error UnknownRecord(RecordId recordId);

    /// @notice Only the publisher of a record may yank it.
    error NotPublisher(RecordId recordId, address publisher, address caller);

    /// @notice The signed publish came after its deadline.
    error ExpiredSignature(uint256 deadline);

    /// @notice The nonce of a signed publish is not the publisher's next nonce.
    error InvalidAccountNonce(address publisher, uint256 currentNonce);

    /// @notice The signature is malformed (not 65 bytes, high s, or bad v).
    error InvalidSignature();

    /// @notice The signature is valid but made by another account than the publisher.
    error InvalidSigner(address signer, address publisher);

    /// @notice No commitment of `publisher` matches the reveal: none was made, another one replaced
    /// it, or the salt or the records (their ids, in order) differ from what was committed. `commitment`
    /// is what the reveal hashes to.
    error UnknownCommitment(address publisher, bytes32 commitment);

    /// @notice The commitment was made directly by its publisher, so only the publisher may reveal it.
    error CommitmentNotRelayable(address publisher);

    /// @notice The commitment was made in this very block; reveal it in a later one.
    error CommitmentTooRecent(uint256 commitBlock);

    /// @notice The commitment is older than {COMMITMENT_EXPIRY} blocks; commit again.
    error CommitmentExpired(uint256 commitBlock, uint256 lastBlock);

    /// @notice A revealed record exists already: a commitment publishes new records, once.
    error RecordExists(RecordId recordId);

    /// @notice A licence identifier is empty, longer than {MAX_SPDX_LENGTH} bytes, or holds a byte
    /// outside printable ASCII.
    error InvalidLicenseIdentifier(string spdxId);

    /// @notice Licence flags use bits that have no meaning.
    error InvalidLicenseFlags(uint8 flags);

    // ---------------------------------------------------------------------------------------------
    // Events
    // ---------------------------------------------------------------------------------------------

    /// @notice A record was published. With {LicenseAdded} and {RecordYanked} this rebuilds the registry.
    /// @param recordId The new record's id.
    /// @param contentId The content id claimed.
    /// @param publisher The account making the claim.
    /// @param cidCodec The CID codec (0 for a CIDv0).
    /// @param cidDigest The sha2-256 digest of the CID.
    /// @param licenseId The licence term set.
    /// @param kind The kind of content.
    /// @param parents The parent record ids.
    event RecordPublished(
        RecordId indexed recordId,
        bytes32 indexed contentId,
        address indexed publisher,
        uint8 cidCodec,
        bytes32 cidDigest,
        uint32 licenseId,
        uint8 kind,
        RecordId[] parents
    );

    /// @notice A record was yanked by its publisher. It stays readable; clients show the flag.
    event RecordYanked(RecordId indexed recordId, address indexed publisher);

    /// @notice A licence term set was added (at deployment for the built-in ones).
    event LicenseAdded(uint32 indexed licenseId, bytes32 indexed termsHash, string spdxId, uint8 flags);

    // ---------------------------------------------------------------------------------------------
    // Constants
    // ---------------------------------------------------------------------------------------------

    /// @notice The most parents a record may have (the fan-in cap).
    function MAX_PARENTS() external view returns (uint256);

    /// @notice The longest licence identifier, in bytes.
    function MAX_SPDX_LENGTH() external view returns (uint256);

    /// @notice How many blocks after its commitment's block a reveal may come, at most (255). Long
    /// enough for a reveal to be mined under congestion (51 minutes of 12-second blocks, 8.5 minutes of
    /// 2-second ones); short enough that a priority can date back at most that far before the records
    /// became public, and exactly what the 8-bit priority field of a record holds.
    function COMMITMENT_EXPIRY() external view returns (uint256);

    /// @notice Licence flag: commercial use is allowed.
    function COMMERCIAL_USE() external view returns (uint8);

    /// @notice Licence flag: derivatives are allowed.
    function DERIVATIVES() external view returns (uint8);

    /// @notice Licence flag: derivatives must be under the same terms.
    function SHARE_ALIKE() external view returns (uint8);

    /// @notice Licence flag: attribution is required (informative; parent links are the attribution).
    function ATTRIBUTION() external view returns (uint8);

    /// @notice The EIP-712 type hash of `Record`, whose struct hash is the record id.
    function RECORD_TYPEHASH() external view returns (bytes32);

    /// @notice The EIP-712 type hash of `Publish`, the message a publisher signs for {publishSigned}.
    function PUBLISH_TYPEHASH() external view returns (bytes32);

    /// @notice The EIP-712 type hash of `Commit(bytes32 commitment,uint256 nonce,uint256 deadline)`,
    /// the message a publisher signs for {commitSigned}.
    function COMMIT_TYPEHASH() external view returns (bytes32);

    // ---------------------------------------------------------------------------------------------
    // Publishing
    // ---------------------------------------------------------------------------------------------

    /// @notice Publishes a record claimed by the caller.
    /// @dev Publishing a claim that already exists (same id) changes nothing, emits nothing and returns
    /// its id, so a client that retries is safe. Licence rules, parent by parent in id order: a parent
    /// published by another account binds the child with its terms (without {DERIVATIVES} it refuses
    /// the child; without {COMMERCIAL_USE} it refuses a child with it; {SHARE_ALIKE} refuses a child
    /// under other terms); a parent published by the same account binds it only with the restrictions
    /// that parent inherited from other publishers (see {RecordState}). So a record respects every
    /// restriction of another publisher's record anywhere in its ancestry; a publisher is exempt only
    /// from restrictions that originate in its own records.
    /// @param input The claim.
    /// @return recordId The record's id.
    function publish(RecordInput calldata input) external returns (RecordId recordId);

    /// @notice Publishes many records claimed by the caller, in order, in one transaction.
    /// @dev A record may name records earlier in the batch as parents (compute their ids with
    /// {recordIdOf}). Each record follows the rules of {publish}.
    /// @param inputs The claims.
    /// @return recordIds The records' ids, in input order.
    function publishBatch(RecordInput[] calldata inputs) external returns (RecordId[] memory recordIds);

    /// @notice Publishes a record claimed by `publisher`, who signed it with EIP-712; anyone may send it.
    /// @dev The signed message is `Publish(Record record,uint256 nonce,uint256 deadline)` (see
    /// {PUBLISH_TYPEHASH}) in the domain of {eip712Domain}; `nonce` must equal {nonces}(publisher) and is
    /// used up even when the record already exists.
    /// @param input The claim.
    /// @param publisher The signer, who becomes the record's publisher.
    /// @param nonce The publisher's next nonce.
    /// @param deadline The last block timestamp at which the signature is valid.
    /// @param signature The 65-byte signature (r, s, v).
    /// @return recordId The record's id.
    function publishSigned(
        RecordInput calldata input,
        address publisher,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external returns (RecordId recordId);

    /// @notice Records a commitment of the caller to records it will reveal in a later block
    /// ({revealCommitment}); the records then carry this block as their priority block. It replaces the caller's
    /// previous commitment, revealed or not (one per publisher).
    /// @dev The commitment is {commitmentOf}(caller, salt, ids of the records): it shows nothing of the
    /// records until the salt is revealed, so a transaction watcher cannot copy the content ids and
    /// claim them first. One commitment covers a whole batch.
    /// @param commitment The commitment (its first 160 bits are kept).
    function commitRecordIds(bytes32 commitment) external;

    /// @notice Records a commitment that `publisher` signed with EIP-712; anyone may send it, and
    /// anyone may then reveal it ({revealCommitmentFor}).
    /// @dev The signed message is `Commit(bytes32 commitment,uint256 nonce,uint256 deadline)` (see
    /// {COMMIT_TYPEHASH}) in the domain of {eip712Domain}; `nonce` is the publisher's next nonce, shared
    /// with {publishSigned}.
    /// @param publisher The signer, whose commitment it becomes.
    /// @param commitment The commitment.
    /// @param nonce The publisher's next nonce.
    /// @param deadline The last block timestamp at which the signature is valid.
    /// @param signature The 65-byte signature (r, s, v).
    function commitSigned(
        address publisher,
        bytes32 commitment,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Publishes the records the caller committed to, in order, with the commitment's block as
    /// their priority block.
    /// @dev Reverts unless the caller's commitment is {commitmentOf}(caller, salt, the records' ids in
    /// this order), at least one block old and at most {COMMITMENT_EXPIRY} blocks old, and every record
    /// is new ({RecordExists} otherwise, which also makes a commitment single-use). Each record follows
    /// the rules of {publish}; a record may name an earlier one of the same reveal as a parent. The
    /// records are checked as they are published and the commitment after them (one pass), so a
    /// record's own error comes first; any error reverts the whole reveal.
    /// Returns nothing: the caller computed the ids to commit to them.
    /// @param salt The secret the commitment was made with.
    /// @param inputs The claims, in the committed order.
    function revealCommitment(bytes32 salt, RecordInput[] calldata inputs) external;

    /// @notice Publishes the one record the caller committed to, as {revealCommitment} with a single
    /// record (the commitment is {commitmentOf}(caller, salt, [its id])), for less calldata and gas.
    /// @param salt The secret the commitment was made with.
    /// @param input The claim.
    function revealOne(bytes32 salt, RecordInput calldata input) external;

    /// @notice Publishes the records `publisher` committed to, as {revealCommitment}; anyone may send it for a
    /// commitment the publisher signed ({commitSigned}), only the publisher for one it made itself.
    /// @param publisher Whose commitment it is; the records' publisher.
    /// @param salt The secret the commitment was made with.
    /// @param inputs The claims, in the committed order.
    function revealCommitmentFor(address publisher, bytes32 salt, RecordInput[] calldata inputs) external;

    /// @notice Marks one of the caller's records as yanked. Yanking a yanked record changes nothing.
    /// @param recordId The record to yank.
    function yank(RecordId recordId) external;

    /// @notice Adds a licence term set, or returns the id of the one with the same terms.
    /// @param spdxId An SPDX licence identifier or expression, or a `LicenseRef-` name: 1 to
    /// {MAX_SPDX_LENGTH} bytes of printable ASCII.
    /// @param flags A combination of {COMMERCIAL_USE}, {DERIVATIVES}, {SHARE_ALIKE} and {ATTRIBUTION}.
    /// @return licenseId The term set's id.
    function addLicense(string calldata spdxId, uint8 flags) external returns (uint32 licenseId);

    // ---------------------------------------------------------------------------------------------
    // Reading
    // ---------------------------------------------------------------------------------------------

    /// @notice Reads many records in one call; an unknown id reads as all zeros (publisher 0).
    function records(RecordId[] calldata recordIds) external view returns (RecordState[] memory);

    /// @notice The current commitment of a publisher: its first 160 bits (the rest zero), the block it
    /// was made in, and whether anyone may reveal it; all zero when the publisher never committed.
    function commitments(address publisher)
        external
        view
        returns (bytes32 commitment, uint40 blockNumber, bool relayable);

    /// @notice The commitment to records: `keccak256(abi.encode(publisher, salt,
    /// keccak256(abi.encodePacked(recordIds))))`, the ids in the order they will be revealed.
    function commitmentOf(address publisher, bytes32 salt, RecordId[] calldata recordIds)
        external
        pure
        returns (bytes32);

    /// @notice The id a record gets when `publisher` publishes `input`.
    function recordIdOf(address publisher, RecordInput calldata input) external pure returns (RecordId);

    /// @notice The number of licence term sets; their ids run from 1 to this number.
    function licenseCount() external view returns (uint32);

    /// @notice Reads many licence term sets in one call; an unknown id reads as an empty identifier.
    function licenses(uint32[] calldata licenseIds) external view returns (LicenseTerms[] memory);

    /// @notice The id of the term set with exactly these terms, or 0 when there is none.
    function licenseIdOf(string calldata spdxId, uint8 flags) external view returns (uint32);

    /// @notice The next nonce of a publisher for {publishSigned}.
    function nonces(address publisher) external view returns (uint256);

    /// @notice The EIP-712 domain separator of this registry on the current chain.
    function DOMAIN_SEPARATOR() external view returns (bytes32);

    /// @notice The EIP-712 domain (EIP-5267).
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        );
}
