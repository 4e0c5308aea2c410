"""Publishing: claims on the chain for elements, whole models and compositions.

- :mod:`registry.publish.claims`         elements and compositions: plan, pin, send, sign, relay
- :mod:`registry.publish.commit_reveal`  commit-reveal priority: salts kept until revealed
- :mod:`registry.publish.model`          compose and publish-model: a checkpoint as elements plus its composition
"""

# Its modules are the API; the package itself exports nothing.
__all__: list[str] = []
