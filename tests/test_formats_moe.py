"""A Mixtral-layout mixture of experts built from dense Mistral models (registry/formats/moe.py),
assembled by the engine, loaded by Transformers and run: each expert is its dense model's MLP bit
for bit, the router is the counter stream's, and the model gives finite outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from registry.compose import merges
from registry.compose.engine import assemble
from registry.compose.sources import LocalElementSource
from registry.formats.moe import mixtral_moe_recipe
from registry.formats.recipe import RecipeError, parse_recipe
from tests.compose_support import read_tensors, write_element, write_file_element

LAYERS, HIDDEN = 2, 32


def _dense_models(tmp_path, torch, transformers):
    config = transformers.MistralConfig(vocab_size=101, hidden_size=HIDDEN, intermediate_size=48, num_hidden_layers=LAYERS,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                        tie_word_embeddings=False)
    out = {}
    for name, seed in (("base", 0), ("e0", 1), ("e1", 2), ("e2", 3)):
        torch.manual_seed(seed)
        model = transformers.MistralForCausalLM(config)
        out[name] = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return config, out


@pytest.mark.parametrize("gate_mode", ["random", "uniform_random"])
def test_a_mixtral_moe_of_three_dense_experts_loads_and_runs(tmp_path, gate_mode):
    torch = pytest.importorskip("torch", reason="torch is installed by scripts/setup.sh test (the [test] extra)")
    transformers = pytest.importorskip("transformers")
    config, models = _dense_models(tmp_path, torch, transformers)
    root = tmp_path / "els"
    inputs = {n: {"content_id": write_element(root, f"{n}.safetensors", t), "path": f"{n}.safetensors"} for n, t in models.items()}
    inputs["config"] = {"content_id": write_file_element(root, "config.json", config.to_json_string().encode()), "path": "config.json"}
    doc = mixtral_moe_recipe(inputs, "base", ["e0", "e1", "e2"], "config", num_layers=LAYERS, hidden_size=HIDDEN,
                             gate_mode=gate_mode, seed=7)
    result = assemble(parse_recipe(doc), LocalElementSource(root), tmp_path / "moe")
    again = assemble(parse_recipe(doc), LocalElementSource(root), tmp_path / "moe-again", max_shard_size=20_000)
    assert again.content_id == result.content_id

    tensors = {n: a for n, (_, a) in read_tensors(tmp_path / "moe").items()}
    for layer in range(LAYERS):
        for j, expert in enumerate(("e0", "e1", "e2")):
            for source, target in (("gate_proj", "w1"), ("down_proj", "w2"), ("up_proj", "w3")):
                assert np.array_equal(tensors[f"model.layers.{layer}.block_sparse_moe.experts.{j}.{target}.weight"],
                                      models[expert][f"model.layers.{layer}.mlp.{source}.weight"])
        gate = tensors[f"model.layers.{layer}.block_sparse_moe.gate.weight"]
        name = f"model.layers.{layer}.block_sparse_moe.gate.weight"
        distribution, scale = ("normal", 1.0) if gate_mode == "random" else ("uniform", (1.0 / HIDDEN) ** 0.5)
        assert np.array_equal(gate.reshape(-1), merges.random_block(distribution, scale, 7, name, 0, 3 * HIDDEN).astype(np.float32))
    assert np.array_equal(tensors["model.layers.1.self_attn.q_proj.weight"], models["base"]["model.layers.1.self_attn.q_proj.weight"])
    written = json.loads((tmp_path / "moe" / "config.json").read_text())
    assert written["architectures"] == ["MixtralForCausalLM"] and written["num_local_experts"] == 3

    with torch.no_grad():
        moe = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "moe").eval()
        assert type(moe).__name__ == "MixtralForCausalLM"
        router = moe.model.layers[0].mlp.gate.weight.numpy()
        assert np.array_equal(router, tensors["model.layers.0.block_sparse_moe.gate.weight"])
        experts = moe.model.layers[1].mlp.experts
        for j, expert in enumerate(("e0", "e1", "e2")):  # Transformers fused w1|w3 and w2 as its layout wants
            dense = models[expert]
            fused = np.concatenate([dense["model.layers.1.mlp.gate_proj.weight"], dense["model.layers.1.mlp.up_proj.weight"]])
            assert np.array_equal(experts.gate_up_proj[j].numpy(), fused)
            assert np.array_equal(experts.down_proj[j].numpy(), dense["model.layers.1.mlp.down_proj.weight"])
        logits = moe(torch.tensor([[1, 5, 9, 42, 100]])).logits
    assert logits.shape == (1, 5, 101) and torch.isfinite(logits).all()


def test_a_gate_mode_that_needs_a_forward_pass_is_refused_by_name():
    inputs = {n: {"content_id": "0x" + "ab" * 32, "path": f"{n}.safetensors"} for n in ("base", "a", "b")}
    inputs["config"] = {"content_id": "0x" + "cd" * 32, "path": "config.json"}
    with pytest.raises(RecipeError, match="gate mode 'hidden' is not built here"):
        mixtral_moe_recipe(inputs, "base", ["a", "b"], "config", num_layers=2, hidden_size=8, gate_mode="hidden")
    with pytest.raises(RecipeError, match="experts_per_token must be from 1 to 2"):
        mixtral_moe_recipe(inputs, "base", ["a", "b"], "config", num_layers=2, hidden_size=8, experts_per_token=3)
