"""Mixture-of-experts from dense models, as ``mergekit-moe`` builds them: a recipe document.

Two layouts: Mixtral's (:func:`mixtral_moe_recipe`) and Qwen2-MoE's with a shared expert
(:func:`qwen2_moe_recipe`).

Mixtral: the output has the base model's attention, embeddings and norms; in every layer, expert *j*'s MLP
is dense model *j*'s (``gate_proj``/``down_proj``/``up_proj`` renamed to Mixtral's ``w1``/``w2``/``w3``
under ``block_sparse_moe.experts.j``, copied bit for bit), and the router
``block_sparse_moe.gate.weight`` [experts, hidden] is drawn from the counter stream
(``random_init``): ``random`` is mergekit-moe's ``random`` (a standard normal), ``uniform_random``
its ``uniform_random`` (U(-s, s), s = sqrt(1 / hidden)); ``cheap_embed`` is a ``prompt_gate`` step
(each expert's normalized sum of its prompts' token embeddings, :mod:`registry.compose.merges.gates`). The gate modes that need prompts run
through the model (``hidden``, ``hidden_avg``, ``hidden_last``) are refused by name. ``config.json`` is the base's,
patched to ``MixtralForCausalLM`` with the expert count (Transformers reads this checkpoint layout
and fuses the experts itself when it loads the model).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .recipe import RecipeError, parse_recipe

__all__ = ["mixtral_moe_recipe", "qwen2_moe_recipe", "GATE_MODES"]

GATE_MODES = {"random": "normal", "uniform_random": "uniform"}
_MLP = (("gate_proj", "w1"), ("down_proj", "w2"), ("up_proj", "w3"))


def _gate_step(gate_mode: str, name: str, rows: int, num_layers: int, hidden_size: int, seed: int, dtype: str,
               base: str, prompts: Sequence[Mapping[str, Any]] | None, embedding: str) -> dict[str, Any]:
    """The router step: ``random_init`` for the random modes, ``prompt_gate`` for ``cheap_embed``."""
    if gate_mode == "cheap_embed":
        if prompts is None or len(prompts) != rows:
            raise RecipeError(f"gate mode cheap_embed needs prompts for each of the {rows} experts of {name} "
                              "({positive: [[token ids], …], negative: …} each)")
        return {"op": "prompt_gate", "from": base, "embedding": embedding, "name": name, "layer_range": [0, num_layers],
                "experts": [dict(p) for p in prompts], "dtype": dtype}
    return {"op": "random_init", "name": name, "layer_range": [0, num_layers], "shape": [rows, hidden_size],
            "distribution": GATE_MODES[gate_mode], "seed": seed, "dtype": dtype}


def _check(gate_mode: str, experts: Sequence[str], experts_per_token: int) -> None:
    if gate_mode in ("hidden", "hidden_avg", "hidden_last"):
        raise RecipeError(f"gate mode {gate_mode!r} is not built here: it runs the base model on the prompts, whose "
                          "hidden states depend on the machine's kernels and cannot be re-derived bit for bit by verify; "
                          "use random, uniform_random or cheap_embed (the prompts' token embeddings, no forward pass)")
    if gate_mode not in GATE_MODES and gate_mode != "cheap_embed":
        raise RecipeError(f"gate mode {gate_mode!r} is unknown; use random, uniform_random or cheap_embed")
    if len(experts) < 2:
        raise RecipeError("a mixture of experts needs at least two experts")
    if not 1 <= experts_per_token <= len(experts):
        raise RecipeError(f"experts_per_token must be from 1 to {len(experts)}, got {experts_per_token}")


def _expert_take(source: str, prefix: str) -> dict[str, Any]:
    """Take a dense model's MLP renamed under ``model.layers.N.mlp.<prefix>``."""
    return {"op": "take", "from": source, "select": ["model.layers.*.mlp.*"],
            "rename": [{"regex": r"^(model\.layers\.\d+\.mlp\.)", "to": rf"\1{prefix}"}]}


def qwen2_moe_recipe(inputs: Mapping[str, Any], base: str, experts: Sequence[str], shared_expert: str, config: str, *,
                     num_layers: int, hidden_size: int, intermediate_size: int, gate_mode: str = "random",
                     experts_per_token: int = 2, attention_bias: bool = False, seed: int = 0, dtype: str = "F32",
                     name: str | None = None, prompts: Sequence[Mapping[str, Any]] | None = None,
                     shared_prompts: Mapping[str, Any] | None = None,
                     embedding: str = "model.embed_tokens.weight") -> dict[str, Any]:
    """The recipe document of a Qwen2-MoE-layout MoE as mergekit-moe's ``qwen`` output builds it:
    ``base`` gives everything but the MLPs; expert *j*'s MLP is dense model ``experts[j]``'s
    (``model.layers.N.mlp.experts.j.{gate,up,down}_proj``), the shared expert's is
    ``shared_expert``'s (``mlp.shared_expert.*``), all copied bit for bit; the router
    ``mlp.gate.weight`` [experts, hidden] and the shared expert's gate ``mlp.shared_expert_gate.weight``
    [1, hidden] are ``random_init`` tensors, or with ``cheap_embed`` ``prompt_gate`` tensors from
    ``prompts`` (one per expert) and ``shared_prompts`` (the shared expert's, as mergekit-moe asks). ``config.json`` is the base's patched to
    ``Qwen2MoeForCausalLM`` with every expert (and the shared one) of ``intermediate_size``;
    ``attention_bias`` says whether the base has q/k/v biases (Qwen2 has, Llama and Mistral have
    not: ``qkv_bias`` false replaces mergekit's zero biases, the same model).

    Raises:
        RecipeError: as :func:`mixtral_moe_recipe`.
    """
    _check(gate_mode, experts, experts_per_token)
    steps: list[dict[str, Any]] = [{"op": "take", "from": base, "exclude": ["model.layers.*.mlp.*"]}]
    for index, expert in enumerate(experts):
        steps.append(_expert_take(expert, f"experts.{index}."))
    steps.append(_expert_take(shared_expert, "shared_expert."))
    for tensor, rows, given in (("gate", len(experts), prompts), ("shared_expert_gate", 1,
                                                                   [shared_prompts] if shared_prompts is not None else None)):
        steps.append(_gate_step(gate_mode, f"model.layers.{{n}}.mlp.{tensor}.weight", rows, num_layers, hidden_size, seed,
                                dtype, base, given, embedding))
    patch = {"architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "num_experts": len(experts),
             "num_experts_per_tok": experts_per_token, "decoder_sparse_step": 1, "norm_topk_prob": True,
             "moe_intermediate_size": intermediate_size, "shared_expert_intermediate_size": intermediate_size,
             "mlp_only_layers": [], "qkv_bias": attention_bias, "use_sliding_window": False, "sliding_window": None}
    document: dict[str, Any] = {"format": "elements.recipe/v1", "inputs": dict(inputs), "steps": steps,
                                "files": [{"path": "config.json", "from": config, "patch": patch}]}
    if name:
        document["name"] = name
    parse_recipe(document)
    return document


def mixtral_moe_recipe(inputs: Mapping[str, Any], base: str, experts: Sequence[str], config: str, *, num_layers: int,
                       hidden_size: int, gate_mode: str = "random", experts_per_token: int = 2, seed: int = 0,
                       dtype: str = "F32", name: str | None = None, prompts: Sequence[Mapping[str, Any]] | None = None,
                       embedding: str = "model.embed_tokens.weight") -> dict[str, Any]:
    """The recipe document of a Mixtral-layout MoE: ``base`` (an input name) gives everything but the
    MLPs, ``experts`` (input names, one per expert, each a dense Llama/Mistral-layout model) the
    experts, ``config`` (a file input: the base's config.json) the configuration. With
    ``gate_mode="cheap_embed"``, ``prompts`` gives each expert's prompts as token ids
    (``{positive: [[ids], …], negative: [[ids], …]}``, tokenized as mergekit-moe does: the
    tokenizer's BOS text before the prompt, no other special tokens) and the router is a
    ``prompt_gate`` step over the base's ``embedding``.

    Raises:
        RecipeError: an unknown gate mode, fewer than two experts, more experts per token than
            experts, or anything the recipe refuses.
    """
    _check(gate_mode, experts, experts_per_token)
    steps: list[dict[str, Any]] = [{"op": "take", "from": base, "exclude": ["model.layers.*.mlp.*"]}]
    for index, expert in enumerate(experts):
        steps.append({
            "op": "take", "from": expert, "select": ["model.layers.*.mlp.*"],
            "rename": [{"regex": rf"^model\.layers\.(\d+)\.mlp\.{source}\.weight$",
                        "to": rf"model.layers.\1.block_sparse_moe.experts.{index}.{target}.weight"} for source, target in _MLP],
        })
    steps.append(_gate_step(gate_mode, "model.layers.{n}.block_sparse_moe.gate.weight", len(experts), num_layers, hidden_size,
                            seed, dtype, base, prompts, embedding))
    patch = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": len(experts),
             "num_experts_per_tok": experts_per_token}
    document: dict[str, Any] = {"format": "elements.recipe/v1", "inputs": dict(inputs), "steps": steps,
                                "files": [{"path": "config.json", "from": config, "patch": patch}]}
    if name:
        document["name"] = name
    parse_recipe(document)
    return document
