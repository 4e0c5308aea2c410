"""Formats: the documents and files Elements reads and writes, pure (no chain, no storage, no network).

- :mod:`registry.formats.safetensors`  strict safetensors header parser (dtypes, header model, errors)
- :mod:`registry.formats.checkpoint`   checkpoints: single files and sharded indexes, mmap'd tensor views
- :mod:`registry.formats.safetensors_writer`  the canonical safetensors writer
- :mod:`registry.formats.content_id`   content ids, element manifests (``elements.manifest/v1``), canonical JSON
- :mod:`registry.formats.recipe`       ``elements.recipe/v1``: parse (JSON or YAML), canonical JSON
- :mod:`registry.formats.split`        cutting a checkpoint into element files
"""

# Its modules are the API; the package itself exports nothing.
__all__: list[str] = []
