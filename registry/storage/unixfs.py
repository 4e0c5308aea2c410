"""UnixFS files: a streaming importer whose CIDs are Kubo's, and a verifying reader.

The importer reproduces boxo's balanced layout (``ipld/unixfs/importer/balanced``) with the
fixed-size chunker, for the profiles Kubo 0.42 names (``ipfs init --profile=...``, IPIP-499)::

    profile          CID  leaves   chunk     links  Kubo flags
    unixfs-v0-2015   v0   dag-pb   256 KiB   174    (Kubo's default; alias legacy-cid-v0)
    unixfs-v1-2025   v1   raw      1 MiB     1024   the project default
    cidv1            v1   raw      256 KiB   174    ipfs add --cid-version=1

Layout rules (each is checked by a test against a real Kubo):

- a file of one chunk is that chunk's leaf; an empty file is one empty leaf;
- otherwise leaves are grouped left to right into nodes of ``max_links`` children, and
  those nodes again, until one node remains (a lone leftover child still gets a parent);
- a size that is an exact multiple of the chunk has no empty trailing chunk;
- inner nodes are dag-pb ``File`` nodes: links (empty name, Tsize = sub-DAG bytes) then
  Data ``{Type: File, filesize, blocksizes: [file bytes per child]}``;
- dag-pb leaves are ``{Type: File, Data: chunk, filesize}`` (boxo keeps ``File``, not ``Raw``).

Any profile may hash with another function Kubo accepts (``Profile.with_hash``, what
``ipfs add --hash`` does; a CIDv0 is always sha2-256): every block's multihash is then that
function's, at its default length.

The work is cut by job, and this module is their front (import from here):

- :mod:`.profiles`: :class:`Profile`, :data:`PROFILES`, :func:`get_profile`;
- :mod:`.importer`: :func:`add_file` and :func:`add_files`, the streaming importer (threads, buffers, block sink);
- :mod:`.exporter`: :func:`read_file`, :func:`walk_dag`, :func:`file_matches`, :func:`file_size`,
  :func:`file_node`, :func:`links_of`: DAGs read back, every block and size checked.
"""

from __future__ import annotations

from .exporter import MAX_DEPTH, GetBlock, file_matches, file_node, file_size, links_of, read_file, walk_dag
from .importer import BATCH_BYTES, BlockSink, Readable, Source, add_file, add_files
from .profiles import DEFAULT_PROFILE, MAX_CHUNK_SIZE, PROFILES, Profile, get_profile

__all__ = [
    "BATCH_BYTES",
    "BlockSink",
    "DEFAULT_PROFILE",
    "GetBlock",
    "MAX_CHUNK_SIZE",
    "MAX_DEPTH",
    "PROFILES",
    "Profile",
    "Readable",
    "Source",
    "add_file",
    "add_files",
    "file_matches",
    "file_node",
    "file_size",
    "get_profile",
    "links_of",
    "read_file",
    "walk_dag",
]
