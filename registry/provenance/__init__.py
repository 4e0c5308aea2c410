"""Provenance: verify a model file or directory down to the tensor, explain where every tensor
came from, and export a CycloneDX bill of materials.

Modules (imports point down: publish, compose, records, chain, storage, formats; inside the
package each imports only modules listed before it):

- ``model_files``: the model on disk, hashed (weights' manifest, every other file's id)
- ``results``: the report data (``elements.verify/v1``) and ``VerifyOptions``
- ``manifest_elements``: recipe inputs seen through their manifests, data fetched when read
- ``compare``: a model's tensors against what a claim says they are (derived ones recomputed)
- ``decision``: the verdict and the accepted claim under the user's policy
- ``index``: the attribution index (per-tensor digest and name -> published elements), cached
- ``attribution``: tensor-by-tensor attribution when no claim matches
- ``verifier``: ``Verifier``: claims re-derived, ancestry walked, verdict decided
- ``verify``: the front: :func:`verify_model` and every name above callers use
- ``report``: the human (rich) rendering of a report
- ``bom``: CycloneDX 1.6 JSON bill of materials from a report

Documents and licences are :mod:`registry.records`' (``documents``, ``licensing``).

The whole story is in ``docs/provenance.md``.
"""

from .verify import Report, VerifyOptions, verify_model

__all__ = ["Report", "VerifyOptions", "verify_model"]
