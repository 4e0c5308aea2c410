"""Storage: CIDs, UnixFS, the local block store, CAR files, Kubo and trustless gateways.

Modules, bottom up: ``cid`` (CIDs, multihash, multibase), ``dagpb`` (dag-pb / UnixFS nodes),
``unixfs`` (the Kubo-identical importer and the verifying reader), ``blockstore`` (blocks under
``$ELEMENTS_HOME/blocks``), ``car`` (CAR v1 in and out), ``kubo`` (Kubo RPC over httpx),
``gateway`` (trustless HTTP gateways) and ``fetch`` (one front over all of them).
See ``docs/storage.md``.
"""

# Its modules are the API; the package itself exports nothing.
__all__: list[str] = []
