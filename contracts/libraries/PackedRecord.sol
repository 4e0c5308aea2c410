// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice The storage word of one record.
/// @dev Layout, most significant bit first:
///
///   255                      96 95       64 63            24 23     16 15      8 7         1  0
///  +--------------------------+-----------+----------------+---------+---------+-----------+---+
///  | publisher                | licenseId | blockNumber    | kind    | cidCodec| parentCnt | Y |
///  | 160 bits                 | 32 bits   | 40 bits        | 8 bits  | 8 bits  | 7 bits    | 1 |
///  +--------------------------+-----------+----------------+---------+---------+-----------+---+
///
/// Y is the yanked flag. The publisher is never the zero address, so a word is zero exactly when the
/// record does not exist. 40 bits of block number last 34,000 years at 1,000 blocks per second.
type PackedRecord is uint256;

using PackedRecordLibrary for PackedRecord global;

/// @notice Packing and unpacking of {PackedRecord} words.
library PackedRecordLibrary {
    uint256 internal constant PUBLISHER_OFFSET = 96;
    uint256 internal constant LICENSE_OFFSET = 64;
    uint256 internal constant BLOCK_OFFSET = 24;
    uint256 internal constant KIND_OFFSET = 16;
    uint256 internal constant CODEC_OFFSET = 8;
    uint256 internal constant PARENT_COUNT_OFFSET = 1;
    uint256 internal constant YANKED_BIT = 1;

    /// @dev Packs a new (not yanked) record. `parentCount` must be below 128 (the caller caps it).
    function pack(
        address publisher_,
        uint32 licenseId_,
        uint40 blockNumber_,
        uint8 kind_,
        uint8 cidCodec_,
        uint256 parentCount_
    ) internal pure returns (PackedRecord word) {
        word = PackedRecord.wrap(
            (uint256(uint160(publisher_)) << PUBLISHER_OFFSET) | (uint256(licenseId_) << LICENSE_OFFSET)
                | (uint256(blockNumber_) << BLOCK_OFFSET) | (uint256(kind_) << KIND_OFFSET)
                | (uint256(cidCodec_) << CODEC_OFFSET) | (parentCount_ << PARENT_COUNT_OFFSET)
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

    function cidCodec(PackedRecord word) internal pure returns (uint8) {
        return uint8(PackedRecord.unwrap(word) >> CODEC_OFFSET);
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
