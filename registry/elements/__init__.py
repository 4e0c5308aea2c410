"""Elements: strict safetensors parsing and writing, content ids and manifests, splitting models."""

# Its modules are the API; the package itself exports nothing.
__all__: list[str] = []
