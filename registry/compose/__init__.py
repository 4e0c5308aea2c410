"""Compositions: planning over manifests and the streaming assembly engine (the recipe format is
:mod:`registry.formats.recipe`).

Each module imports only modules listed before it (no cycle; tests/test_conventions.py checks it):

- :mod:`registry.compose.ops`           the fixed numerics of derived tensors (float64, round once, RNE)
- :mod:`registry.compose.readers`       verified element readers (every byte hashed before it is used)
- :mod:`registry.compose.tensor_plans`  the lazy plan of one output tensor (copy, cast, merge, checked, ...)
- :mod:`registry.compose.plan`          recipe steps over manifests -> one lazy plan per output tensor
- :mod:`registry.compose.outputs`       the output table check and the files' JSON merge patches
- :mod:`registry.compose.nested`        compositions as recipe inputs (given the source and the builder)
- :mod:`registry.compose.writer`        the writing half of assembly: opened inputs -> verified model directory
- :mod:`registry.compose.sources`       the element source interface (``open`` checks what a source gives)
- :mod:`registry.compose.engine`        assemble / inspect a recipe from a source
- :mod:`registry.compose.chain_source`  elements and compositions from the chain; assemble by hash
- :mod:`registry.compose.delta`         fine-tune deltas
"""

# Its modules are the API; the package itself exports nothing.
__all__: list[str] = []
