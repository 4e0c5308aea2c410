"""Records: what the chain's claims mean, read from the chain and the documents they point to.

- :mod:`registry.records.resolve`    the Resolver: records, claims and whole graphs read level by level
- :mod:`registry.records.graph`      the record graph a resolution returns (ResolvedRecord, Graph)
- :mod:`registry.records.documents`  documents behind records (manifests, recipes), fetched and checked
- :mod:`registry.records.disputes`   claim priority, "stricter" terms, later copies under looser terms
- :mod:`registry.records.licensing`  the effective licence of an ancestry; a child's licence checked against it
- :mod:`registry.records.filters`    which records a listing keeps (the filters of ``elements ls``)
"""

# Its modules are the API; the package itself exports nothing.
__all__: list[str] = []
