// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice The storage word of one record.
/// @dev Layout, most significant bit first:
///
///   255                      96 95       64 63            24 23     16 15 14 13   10  9  8 7         1  0
///  +--------------------------+-----------+----------------+---------+-----+-------+--+--+-----------+---+
///  | publisher                | licenseId | blockNumber    | kind    | cdc | 0000  |SA|NC| parentCnt | Y |
///  | 160 bits                 | 32 bits   | 40 bits        | 8 bits  | 2   | 4     |1 |1 | 7 bits    | 1 |
///  +--------------------------+-----------+----------------+---------+-----+-------+--+--+-----------+---+
///
/// cdc is the CID codec's class (0 CIDv0, 1 raw 0x55, 2 dag-pb 0x70: the only codecs the registry
/// accepts). NC and SA are the restrictions the record inherits from records of other publishers
/// (see {IElementRegistry-records}): NC, it may not allow commercial use; SA, its derivatives must
/// keep its licence term set. Y is the yanked flag. The four bits marked 0000 are always zero.
/// The publisher is never the zero address, so a word is zero exactly when the record does not
/// exist. 40 bits of block number last 34,000 years at one block per second.
type PackedRecord is uint256;

using PackedRecordLibrary for PackedRecord global;

/// @notice Packing and unpacking of {PackedRecord} words.
library PackedRecordLibrary {
    uint256 internal constant PUBLISHER_OFFSET = 96;
    uint256 internal constant LICENSE_OFFSET = 64;
    uint256 internal constant BLOCK_OFFSET = 24;
    uint256 internal constant KIND_OFFSET = 16;
    uint256 internal constant CODEC_CLASS_OFFSET = 14;
    uint256 internal constant INHERITED_OFFSET = 8;
    uint256 internal constant PARENT_COUNT_OFFSET = 1;
    uint256 internal constant YANKED_BIT = 1;

    /// @dev Inherited restriction: the record may not allow commercial use.
    uint256 internal constant INHERITS_NON_COMMERCIAL = 1;
    /// @dev Inherited restriction: the record's derivatives must keep its licence term set.
    uint256 internal constant INHERITS_SHARE_ALIKE = 2;

    /// @dev Packs a new (not yanked) record. `codecClass` must be below 4, `inherited_` below 4 and
    /// `parentCount_` below 128 (the caller guarantees all three).
    function pack(
        address publisher_,
        uint32 licenseId_,
        uint40 blockNumber_,
        uint8 kind_,
        uint256 codecClass,
        uint256 inherited_,
        uint256 parentCount_
    ) internal pure returns (PackedRecord word) {
        word = PackedRecord.wrap(
            (uint256(uint160(publisher_)) << PUBLISHER_OFFSET) | (uint256(licenseId_) << LICENSE_OFFSET)
                | (uint256(blockNumber_) << BLOCK_OFFSET) | (uint256(kind_) << KIND_OFFSET)
                | (codecClass << CODEC_CLASS_OFFSET) | (inherited_ << INHERITED_OFFSET)
                | (parentCount_ << PARENT_COUNT_OFFSET)
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
        return uint40(PackedRecord.unwrap(word) >> BLOCK_OFFSET);
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
