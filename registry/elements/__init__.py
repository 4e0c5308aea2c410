"""Elements: strict safetensors parsing and writing, content ids and manifests, splitting models."""
