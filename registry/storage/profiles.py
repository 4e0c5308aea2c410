"""UnixFS import profiles: the parameters that decide a file's CID, as Kubo 0.42 names them.

See :mod:`registry.storage.unixfs` for the table of profiles and the layout rules they feed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InputError
from . import multihash as mh

__all__ = ["DEFAULT_PROFILE", "MAX_CHUNK_SIZE", "PROFILES", "Profile", "get_profile"]

# Kubo refuses chunks over 2 MiB (boxo chunker.ChunkSizeLimit).
MAX_CHUNK_SIZE = 2 * 1024 * 1024


@dataclass(frozen=True)
class Profile:
    """The import parameters that decide a file's CID."""

    name: str
    cid_version: int
    raw_leaves: bool
    chunk_size: int
    max_links: int
    #: The multihash function, by its ``ipfs add --hash`` name (see :mod:`.multihash`).
    hash: str = "sha2-256"

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise InputError(f"CID version {self.cid_version} does not exist; use 0 or 1")
        function = mh.by_name(self.hash)
        if function.name != self.hash:
            raise InputError(f"hash {self.hash!r} is spelt {function.name!r} here; use Profile.with_hash")
        if self.cid_version == 0 and function.code != mh.SHA2_256:
            raise InputError(
                f"a CIDv0 is always sha2-256, so profile {self.name} cannot use {self.hash} (Kubo refuses it too); "
                "use --profile unixfs-v1-2025 or cidv1"
            )
        if self.cid_version == 0 and self.raw_leaves:
            raise InputError("raw leaves need CIDv1; use cid_version=1")
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise InputError(f"chunk size {self.chunk_size} is outside 1..{MAX_CHUNK_SIZE} bytes")
        if self.max_links < 2:
            raise InputError(f"max links {self.max_links} must be at least 2")

    def with_hash(self, name: str) -> "Profile":
        """This profile with another hash function (any spelling ``ipfs add --hash`` takes).

        Raises:
            CIDError: a hash function Kubo does not accept.
            InputError: a CIDv0 profile with anything but sha2-256.
        """
        return replace(self, hash=mh.by_name(name).name)

    def kubo_add_flags(self) -> list[str]:
        """The ``ipfs add`` flags that give the same CIDs on any Kubo repo."""
        flags = [
            f"--cid-version={self.cid_version}",
            f"--raw-leaves={'true' if self.raw_leaves else 'false'}",
            f"--chunker=size-{self.chunk_size}",
            f"--max-file-links={self.max_links}",
        ]
        if self.hash != "sha2-256":
            flags.append(f"--hash={self.hash}")
        return flags

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "cid_version": self.cid_version,
            "raw_leaves": self.raw_leaves,
            "chunk_size": self.chunk_size,
            "max_links": self.max_links,
            "hash": self.hash,
        }


PROFILES: dict[str, Profile] = {
    "unixfs-v1-2025": Profile("unixfs-v1-2025", 1, True, 1024 * 1024, 1024),
    "unixfs-v0-2015": Profile("unixfs-v0-2015", 0, False, 256 * 1024, 174),
    "cidv1": Profile("cidv1", 1, True, 256 * 1024, 174),
}
_ALIASES = {"legacy-cid-v0": "unixfs-v0-2015", "kubo-default": "unixfs-v0-2015", "cid-version-1": "cidv1"}
DEFAULT_PROFILE = "unixfs-v1-2025"


def get_profile(profile: str | Profile) -> Profile:
    """A profile by name (or the profile itself).

    Raises:
        InputError: an unknown name.
    """
    if isinstance(profile, Profile):
        return profile
    name = _ALIASES.get(profile, profile)
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise InputError(f"unknown UnixFS profile {profile!r}; use one of {known}") from None

