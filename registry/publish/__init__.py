"""Publishing: claims on the chain for elements, whole models and compositions.

- :mod:`registry.publish.prepare`        element files: content id, manifest, blocks in the local store
- :mod:`registry.publish.claims`         claims: licence and parents checked, record ids for the publisher
- :mod:`registry.publish.plan`           what exists (one view call), the rest checked off-chain, gas estimated
- :mod:`registry.publish.send`           pin and send: idempotent, batched, resumable
- :mod:`registry.publish.signed`         signed publishing: sign for a relayer, relay
- :mod:`registry.publish.commit_reveal`  commit-reveal priority: salts kept until revealed
- :mod:`registry.publish.model`          compose and publish-model: a checkpoint as elements plus its composition
"""

# Its modules are the API; the package itself exports nothing.
__all__: list[str] = []
