"""Elements: an on-chain registry of composable AI model components.

Layers (imports point down only)::

    cli          thin commands, human and --json output, exit codes
    provenance   verify a model file or directory, reports, bill of materials
    compose      recipes, assembly engine
    elements     safetensors parsing, splitting models, element manifests, content ids
    chain        contract bindings, deploy, publish, batched reads (web3.py)
    storage      CIDs, UnixFS, CAR, local block store, Kubo RPC, gateways
    digest       hashing primitives

``errors`` and ``config`` sit below every layer.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
