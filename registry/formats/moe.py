"""Mixture-of-experts from dense models, as ``mergekit-moe`` builds them: a recipe document.

The output has the base model's attention, embeddings and norms; in every layer, expert *j*'s MLP
is dense model *j*'s (``gate_proj``/``down_proj``/``up_proj`` renamed to Mixtral's ``w1``/``w2``/``w3``
under ``block_sparse_moe.experts.j``, copied bit for bit), and the router
``block_sparse_moe.gate.weight`` [experts, hidden] is drawn from the counter stream
(``random_init``): ``random`` is mergekit-moe's ``random`` (a standard normal), ``uniform_random``
its ``uniform_random`` (U(-s, s), s = sqrt(1 / hidden)). The gate modes that need prompts run
through the model (``hidden``, ``cheap_embed``) are not built. ``config.json`` is the base's,
patched to ``MixtralForCausalLM`` with the expert count (Transformers reads this checkpoint layout
and fuses the experts itself when it loads the model).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .recipe import RecipeError, parse_recipe

__all__ = ["mixtral_moe_recipe", "GATE_MODES"]

GATE_MODES = {"random": "normal", "uniform_random": "uniform"}
_MLP = (("gate_proj", "w1"), ("down_proj", "w2"), ("up_proj", "w3"))


def mixtral_moe_recipe(inputs: Mapping[str, Any], base: str, experts: Sequence[str], config: str, *, num_layers: int,
                       hidden_size: int, gate_mode: str = "random", experts_per_token: int = 2, seed: int = 0,
                       dtype: str = "F32", name: str | None = None) -> dict[str, Any]:
    """The recipe document of a Mixtral-layout MoE: ``base`` (an input name) gives everything but the
    MLPs, ``experts`` (input names, one per expert, each a dense Llama/Mistral-layout model) the
    experts, ``config`` (a file input: the base's config.json) the configuration.

    Raises:
        RecipeError: an unknown gate mode, fewer than two experts, more experts per token than
            experts, or anything the recipe refuses.
    """
    if gate_mode not in GATE_MODES:
        raise RecipeError(f"gate mode {gate_mode!r} is not built here; use random or uniform_random "
                          "(hidden and cheap_embed need the model run on prompts)")
    if len(experts) < 2:
        raise RecipeError("a mixture of experts needs at least two experts")
    if not 1 <= experts_per_token <= len(experts):
        raise RecipeError(f"experts_per_token must be from 1 to {len(experts)}, got {experts_per_token}")
    steps: list[dict[str, Any]] = [{"op": "take", "from": base, "exclude": ["model.layers.*.mlp.*"]}]
    for index, expert in enumerate(experts):
        steps.append({
            "op": "take", "from": expert, "select": ["model.layers.*.mlp.*"],
            "rename": [{"regex": rf"^model\.layers\.(\d+)\.mlp\.{source}\.weight$",
                        "to": rf"model.layers.\1.block_sparse_moe.experts.{index}.{target}.weight"} for source, target in _MLP],
        })
    steps.append({"op": "random_init", "name": "model.layers.{n}.block_sparse_moe.gate.weight", "layer_range": [0, num_layers],
                  "shape": [len(experts), hidden_size], "distribution": GATE_MODES[gate_mode], "seed": seed, "dtype": dtype})
    patch = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": len(experts),
             "num_experts_per_tok": experts_per_token}
    document: dict[str, Any] = {"format": "elements.recipe/v1", "inputs": dict(inputs), "steps": steps,
                                "files": [{"path": "config.json", "from": config, "patch": patch}]}
    if name:
        document["name"] = name
    parse_recipe(document)
    return document
