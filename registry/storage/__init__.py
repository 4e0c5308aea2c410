"""Storage: CIDs, UnixFS, the local block store, CAR files, Kubo and trustless gateways.

Modules, bottom up: ``multihash`` (the hash functions Kubo accepts), ``cid`` (CIDs, multibase),
``dagpb`` (dag-pb / UnixFS nodes), ``codecs`` (the links of dag-pb, dag-cbor, dag-json and git-raw blocks),
``unixfs`` (the Kubo-identical importer and the verifying reader), ``blockstore`` (blocks under
``$ELEMENTS_HOME/blocks``), ``car`` (CAR v1 out, v1 and v2 in), ``kubo`` (Kubo RPC over httpx),
``gateway`` (trustless HTTP gateways), ``fetch`` (one front over all of them), ``dagfile`` (a UnixFS
file read in place from the store, every block verified), ``roots`` and ``gc`` (what the home holds
and what ``elements gc`` frees).
See ``docs/storage.md``.
"""

# Its modules are the API; the package itself exports nothing.
__all__: list[str] = []
