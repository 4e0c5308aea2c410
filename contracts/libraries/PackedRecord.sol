// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice The storage word of one record.
/// @dev Layout, most significant bit first:
///
///   255                      96 95       64 63          28 27      20 19     12 11 10  9  8 7         1  0
///  +--------------------------+-----------+--------------+----------+---------+-----+--+--+-----------+---+
///  | publisher                | licenseId | blockNumber  | priority | kind    | cdc |SA|NC| parentCnt | Y |
///  | 160 bits                 | 32 bits   | 36 bits      | 8 bits   | 8 bits  | 2   |1 |1 | 7 bits    | 1 |
///  +--------------------------+-----------+--------------+----------+---------+-----+--+--+-----------+---+
///
/// priority is how many blocks before `blockNumber` the record's priority block is: 0 for a record
/// published directly, 1 to {IElementRegistry-COMMITMENT_EXPIRY} for one revealed from a commitment
/// (its commitment's block). cdc is the CID codec's class (0 CIDv0, 1 raw 0x55, 2 dag-pb 0x70: the
/// only codecs the registry accepts). NC and SA are the restrictions the record inherits from
/// records of other publishers (see {IElementRegistry-RecordState}): NC, it may not allow
/// commercial use; SA, its derivatives must keep its licence term set. Y is the yanked flag. The
/// publisher is never the zero address, so a word is zero exactly when the record does not exist.
/// 36 bits of block number last 2,177 years at one block per second (217 years at ten).
type PackedRecord is uint256;

using PackedRecordLibrary for PackedRecord global;

/// @notice Packing and unpacking of {PackedRecord} words.
library PackedRecordLibrary {
    uint256 internal constant PUBLISHER_OFFSET = 96;
    uint256 internal constant LICENSE_OFFSET = 64;
    uint256 internal constant BLOCK_OFFSET = 28;
    uint256 internal constant PRIORITY_OFFSET = 20;
    uint256 internal constant KIND_OFFSET = 12;
    uint256 internal constant CODEC_CLASS_OFFSET = 10;
    uint256 internal constant INHERITED_OFFSET = 8;
    uint256 internal constant PARENT_COUNT_OFFSET = 1;
    uint256 internal constant YANKED_BIT = 1;
    uint256 internal constant BLOCK_MASK = (1 << 36) - 1;

    /// @dev Inherited restriction: the record may not allow commercial use.
    uint256 internal constant INHERITS_NON_COMMERCIAL = 1;
    /// @dev Inherited restriction: the record's derivatives must keep its licence term set.
    uint256 internal constant INHERITS_SHARE_ALIKE = 2;

    /// @dev Packs a new (not yanked) record. The caller guarantees the ranges: `priorityDelta` below
    /// 256, `codecClass` below 4, `inherited_` below 4, `parentCount_` below 128; `blockNumber_` is
    /// cut to 36 bits.
    function pack(
        address publisher_,
        uint32 licenseId_,
        uint256 blockNumber_,
        uint256 priorityDelta,
        uint8 kind_,
        uint256 codecClass,
        uint256 inherited_,
        uint256 parentCount_
    ) internal pure returns (PackedRecord word) {
        word = PackedRecord.wrap(
            (uint256(uint160(publisher_)) << PUBLISHER_OFFSET) | (uint256(licenseId_) << LICENSE_OFFSET)
                | ((blockNumber_ & BLOCK_MASK) << BLOCK_OFFSET) | (priorityDelta << PRIORITY_OFFSET)
                | (uint256(kind_) << KIND_OFFSET) | (codecClass << CODEC_CLASS_OFFSET)
                | (inherited_ << INHERITED_OFFSET) | (parentCount_ << PARENT_COUNT_OFFSET)
        );
    }

    function exists(PackedRecord word) internal pure returns (bool) {
        return PackedRecord.unwrap(word) != 0;
    }

    function publisher(PackedRecord word) internal pure returns (address) {
        return address(uint160(PackedRecord.unwrap(word) >> PUBLISHER_OFFSET));
    }

    function licenseId(PackedRecord word) internal pure returns (uint32) {
        return uint32(PackedRecord.unwrap(word) >> LICENSE_OFFSET);
    }

    function blockNumber(PackedRecord word) internal pure returns (uint40) {
        return uint40((PackedRecord.unwrap(word) >> BLOCK_OFFSET) & BLOCK_MASK);
    }

    /// @dev The priority block: the commitment's block for a revealed record, else `blockNumber`.
    function priorityBlock(PackedRecord word) internal pure returns (uint40) {
        // The delta was at most the block number when it was written (a commitment's block is a
        // block of this chain), so the subtraction cannot underflow.
        unchecked {
            return blockNumber(word) - uint40(uint8(PackedRecord.unwrap(word) >> PRIORITY_OFFSET));
        }
    }

    function kind(PackedRecord word) internal pure returns (uint8) {
        return uint8(PackedRecord.unwrap(word) >> KIND_OFFSET);
    }

    /// @dev The CID codec: 0 (CIDv0), 0x55 (raw) or 0x70 (dag-pb), from its 2-bit class.
    function cidCodec(PackedRecord word) internal pure returns (uint8) {
        uint256 codecClass = (PackedRecord.unwrap(word) >> CODEC_CLASS_OFFSET) & 3;
        // Class 1 is raw, 2 is dag-pb, 0 is a CIDv0; 3 is never written.
        return codecClass == 1 ? 0x55 : codecClass == 2 ? 0x70 : 0;
    }

    /// @dev The restrictions inherited from other publishers: a combination of
    /// {INHERITS_NON_COMMERCIAL} and {INHERITS_SHARE_ALIKE}.
    function inherited(PackedRecord word) internal pure returns (uint256) {
        return (PackedRecord.unwrap(word) >> INHERITED_OFFSET) & 3;
    }

    function parentCount(PackedRecord word) internal pure returns (uint8) {
        return uint8((PackedRecord.unwrap(word) >> PARENT_COUNT_OFFSET) & 0x7f);
    }

    function yanked(PackedRecord word) internal pure returns (bool) {
        return PackedRecord.unwrap(word) & YANKED_BIT != 0;
    }

    function withYanked(PackedRecord word) internal pure returns (PackedRecord) {
        return PackedRecord.wrap(PackedRecord.unwrap(word) | YANKED_BIT);
    }
}

/// @notice The storage word of a publisher's commitment (one per publisher; a new one replaces it).
/// @dev Layout, most significant bit first:
///
///   255                            96 95          48 47                  8 7        1  0
///  +--------------------------------+--------------+---------------------+----------+---+
///  | commitment (its first 160 bits)| 0            | block number        | 0000000  | R |
///  | 160 bits                       | 48 bits      | 40 bits             | 7 bits   | 1 |
///  +--------------------------------+--------------+---------------------+----------+---+
///
/// R: the commitment was signed by the publisher and sent by someone else ({IElementRegistry-commitSigned}),
/// so anyone may reveal it. 160 bits of the commitment keep a second preimage (records other than
/// the committed ones, found after the commitment) out of reach at 2^160 hashes; a collision (2^80)
/// gains nothing, since whoever commits knows both record sets beforehand. Clients send the
/// commitment with its last 12 bytes zeroed, which the calldata prices at 4 gas a byte instead of 16.
type PackedCommitment is uint256;

using PackedCommitmentLibrary for PackedCommitment global;

/// @notice Packing and unpacking of {PackedCommitment} words.
library PackedCommitmentLibrary {
    uint256 internal constant DIGEST_OFFSET = 96;
    uint256 internal constant BLOCK_OFFSET = 8;
    uint256 internal constant RELAYABLE_BIT = 1;

    /// @dev Packs a commitment made in block `blockNumber_`.
    function pack(bytes32 commitment, uint256 blockNumber_, bool relayable_) internal pure returns (PackedCommitment) {
        return PackedCommitment.wrap(
            ((uint256(commitment) >> DIGEST_OFFSET) << DIGEST_OFFSET) | (uint256(uint40(blockNumber_)) << BLOCK_OFFSET)
                | (relayable_ ? RELAYABLE_BIT : 0)
        );
    }

    /// @dev Whether the word holds `commitment` (compared on its first 160 bits; an empty word holds
    /// only a commitment whose first 160 bits are zero, which no keccak256 output is in practice).
    function holds(PackedCommitment word, bytes32 commitment) internal pure returns (bool) {
        return (PackedCommitment.unwrap(word) ^ uint256(commitment)) >> DIGEST_OFFSET == 0;
    }

    function digest(PackedCommitment word) internal pure returns (bytes32) {
        return bytes32((PackedCommitment.unwrap(word) >> DIGEST_OFFSET) << DIGEST_OFFSET);
    }

    function blockNumber(PackedCommitment word) internal pure returns (uint40) {
        return uint40(PackedCommitment.unwrap(word) >> BLOCK_OFFSET);
    }

    function relayable(PackedCommitment word) internal pure returns (bool) {
        return PackedCommitment.unwrap(word) & RELAYABLE_BIT != 0;
    }
}
