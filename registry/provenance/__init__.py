"""Provenance: verify a model file or directory down to the tensor, explain where every tensor
came from, and export a CycloneDX bill of materials.

Modules (imports point down: compose, elements, chain, storage):

- ``documents``: the small JSON documents records point to (manifests, recipes), fetched and checked
- ``licensing``: the effective licence of an ancestry (the most restrictive terms)
- ``index``: the attribution index (per-tensor digest and name -> published elements), cached
- ``verify``: :func:`verify_model` and the report data it returns
- ``report``: the human (rich) rendering of a report
- ``bom``: CycloneDX 1.6 JSON bill of materials from a report

The whole story is in ``docs/provenance.md``.
"""

from .verify import Report, VerifyOptions, verify_model

__all__ = ["Report", "VerifyOptions", "verify_model"]
