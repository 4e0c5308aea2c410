"""Compositions: the recipe format, planning over manifests, and the streaming assembly engine.

- :mod:`registry.formats.recipe`   ``elements.recipe/v1``: parse (JSON or YAML), canonical JSON, record ids
- :mod:`registry.compose.ops`      the fixed numerics of derived tensors (float64, round once, RNE)
- :mod:`registry.compose.sources`  the element source interface and verified element readers
- :mod:`registry.compose.plan`     recipe steps over manifests -> one lazy plan per output tensor
- :mod:`registry.compose.engine`   streaming assembly into a model directory, with provenance
- :mod:`registry.compose.nested`   compositions as recipe inputs (opened recursively, built once)
"""

# Its modules are the API; the package itself exports nothing.
__all__: list[str] = []
