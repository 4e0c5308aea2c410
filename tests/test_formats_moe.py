"""Mixtral- and Qwen2-MoE-layout mixtures of experts built from dense models (registry/formats/moe.py),
assembled by the engine, loaded by Transformers and run: each expert is its dense model's MLP bit
for bit, the router is the counter stream's, and the model gives finite outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from registry.compose import merges
from registry.compose.engine import assemble
from registry.compose.sources import LocalElementSource
from registry.formats.moe import mixtral_moe_recipe, qwen2_moe_recipe
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
    for mode in ("hidden", "hidden_avg", "hidden_last"):
        with pytest.raises(RecipeError, match=f"gate mode '{mode}' is not built here: it runs the base model on the prompts"):
            mixtral_moe_recipe(inputs, "base", ["a", "b"], "config", num_layers=2, hidden_size=8, gate_mode=mode)
        with pytest.raises(RecipeError, match=f"gate mode '{mode}' is not built here"):
            qwen2_moe_recipe(inputs, "base", ["a", "b"], "a", "config", num_layers=2, hidden_size=8, intermediate_size=8,
                             gate_mode=mode)
    with pytest.raises(RecipeError, match="experts_per_token must be from 1 to 2"):
        mixtral_moe_recipe(inputs, "base", ["a", "b"], "config", num_layers=2, hidden_size=8, experts_per_token=3)


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
def test_a_qwen2_moe_with_a_shared_expert_loads_and_runs(tmp_path, family):
    torch = pytest.importorskip("torch", reason="torch is installed by scripts/setup.sh test (the [test] extra)")
    transformers = pytest.importorskip("transformers")
    kind = transformers.Qwen2Config if family == "qwen2" else transformers.MistralConfig
    config = kind(vocab_size=101, hidden_size=HIDDEN, intermediate_size=48, num_hidden_layers=LAYERS, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False)
    model_class = transformers.Qwen2ForCausalLM if family == "qwen2" else transformers.MistralForCausalLM
    models = {}
    for name, seed in (("base", 0), ("e0", 1), ("e1", 2), ("shared", 3)):
        torch.manual_seed(seed)
        models[name] = {k: v.detach().numpy().copy() for k, v in model_class(config).state_dict().items()}
    assert ("model.layers.0.self_attn.q_proj.bias" in models["base"]) == (family == "qwen2")
    root = tmp_path / "els"
    inputs = {n: {"content_id": write_element(root, f"{n}.safetensors", t), "path": f"{n}.safetensors"} for n, t in models.items()}
    inputs["config"] = {"content_id": write_file_element(root, "config.json", config.to_json_string().encode()), "path": "config.json"}
    doc = qwen2_moe_recipe(inputs, "base", ["e0", "e1"], "shared", "config", num_layers=LAYERS, hidden_size=HIDDEN,
                           intermediate_size=48, attention_bias=family == "qwen2", seed=3)
    assemble(parse_recipe(doc), LocalElementSource(root), tmp_path / "moe")
    tensors = {n: a for n, (_, a) in read_tensors(tmp_path / "moe").items()}
    for layer in range(LAYERS):
        for part in ("gate_proj", "up_proj", "down_proj"):
            dense = f"model.layers.{layer}.mlp.{part}.weight"
            for j, expert in enumerate(("e0", "e1")):
                assert np.array_equal(tensors[f"model.layers.{layer}.mlp.experts.{j}.{part}.weight"], models[expert][dense])
            assert np.array_equal(tensors[f"model.layers.{layer}.mlp.shared_expert.{part}.weight"], models["shared"][dense])
        for gate, rows in (("gate", 2), ("shared_expert_gate", 1)):
            name = f"model.layers.{layer}.mlp.{gate}.weight"
            assert np.array_equal(tensors[name].reshape(-1), merges.random_block("normal", 1.0, 3, name, 0, rows * HIDDEN).astype(np.float32))
    written = json.loads((tmp_path / "moe" / "config.json").read_text())
    assert written["architectures"] == ["Qwen2MoeForCausalLM"] and written["num_experts"] == 2

    with torch.no_grad():
        moe = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "moe").eval()
        assert type(moe).__name__ == "Qwen2MoeForCausalLM"
        block = moe.model.layers[1].mlp
        assert np.array_equal(block.gate.weight.numpy(), tensors["model.layers.1.mlp.gate.weight"])
        assert np.array_equal(block.shared_expert.down_proj.weight.numpy(), models["shared"]["model.layers.1.mlp.down_proj.weight"])
        assert np.array_equal(block.shared_expert_gate.weight.numpy(), tensors["model.layers.1.mlp.shared_expert_gate.weight"])
        for j, expert in enumerate(("e0", "e1")):  # Transformers fused gate|up as its layout wants
            dense = models[expert]
            fused = np.concatenate([dense["model.layers.1.mlp.gate_proj.weight"], dense["model.layers.1.mlp.up_proj.weight"]])
            assert np.array_equal(block.experts.gate_up_proj[j].numpy(), fused)
            assert np.array_equal(block.experts.down_proj[j].numpy(), dense["model.layers.1.mlp.down_proj.weight"])
        if family == "qwen2":
            assert np.array_equal(moe.model.layers[0].self_attn.q_proj.bias.numpy(), models["base"]["model.layers.0.self_attn.q_proj.bias"])
        else:
            assert moe.model.layers[0].self_attn.q_proj.bias is None
        logits = moe(torch.tensor([[1, 5, 9, 42, 100]])).logits
    assert logits.shape == (1, 5, 101) and torch.isfinite(logits).all()


PROMPTS = [{"positive": [[1, 5, 9], [1, 7]]}, {"positive": [[1, 40, 41, 42]], "negative": [[1, 5]]},
           {"positive": [[1, 100], [1, 3, 3, 3]]}]


def _mergekit_cheap_embed(torch, embed: np.ndarray, expert: dict) -> np.ndarray:
    """mergekit-moe's cheap_embed gate row, by mergekit's own get_cheap_embedding (padded batches)."""
    from mergekit.moe.router import get_cheap_embedding

    def run(prompts):
        width = max(len(p) for p in prompts)
        ids = torch.tensor([p + [0] * (width - len(p)) for p in prompts])
        mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in prompts])
        return get_cheap_embedding(torch.from_numpy(embed), {"input_ids": ids, "attention_mask": mask}, 1, embed.shape[0])[0]

    hidden = run(expert["positive"])
    if expert.get("negative"):
        hidden = hidden - run(expert["negative"])
    return (hidden / hidden.norm().clamp(min=1e-8)).double().numpy()


def test_a_cheap_embed_router_is_the_prompts_token_embeddings_and_the_model_runs(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is installed by scripts/setup.sh test (the [test] extra)")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("mergekit", reason="mergekit is installed by scripts/setup.sh test (the [test] extra)")
    config, models = _dense_models(tmp_path, torch, transformers)
    root = tmp_path / "els"
    inputs = {n: {"content_id": write_element(root, f"{n}.safetensors", t), "path": f"{n}.safetensors"} for n, t in models.items()}
    inputs["config"] = {"content_id": write_file_element(root, "config.json", config.to_json_string().encode()), "path": "config.json"}
    doc = mixtral_moe_recipe(inputs, "base", ["e0", "e1", "e2"], "config", num_layers=LAYERS, hidden_size=HIDDEN,
                             gate_mode="cheap_embed", prompts=PROMPTS)
    assert [s["op"] for s in doc["steps"]][-1] == "prompt_gate"
    result = assemble(parse_recipe(doc), LocalElementSource(root), tmp_path / "moe")
    again = assemble(parse_recipe(doc), LocalElementSource(root), tmp_path / "moe-again", max_shard_size=20_000)
    assert again.content_id == result.content_id

    tensors = {n: a for n, (_, a) in read_tensors(tmp_path / "moe").items()}
    embed = models["base"]["model.embed_tokens.weight"]
    table = embed.astype(np.float64)
    ours = merges.prompt_gate_rows(lambda ids: table[ids], [(tuple(map(tuple, p["positive"])), tuple(map(tuple, p.get("negative", []))))
                                                             for p in PROMPTS])
    for layer in range(LAYERS):  # every layer's router is the same, rounded once from float64
        assert np.array_equal(tensors[f"model.layers.{layer}.block_sparse_moe.gate.weight"], ours.astype(np.float32))
    for j, expert in enumerate(PROMPTS):  # mergekit computes in float32: agreement to float32 rounding
        assert np.allclose(ours[j], _mergekit_cheap_embed(torch, embed, expert), rtol=0, atol=2e-6)
        assert abs(np.linalg.norm(ours[j]) - 1.0) < 1e-12

    with torch.no_grad():
        moe = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "moe").eval()
        assert np.array_equal(moe.model.layers[1].mlp.gate.weight.numpy(), ours.astype(np.float32))
        logits = moe(torch.tensor([[1, 5, 9, 42, 100]])).logits
    assert logits.shape == (1, 5, 101) and torch.isfinite(logits).all()


def test_a_qwen2_moe_with_cheap_embed_gates_for_its_shared_expert_runs(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is installed by scripts/setup.sh test (the [test] extra)")
    transformers = pytest.importorskip("transformers")
    config, models = _dense_models(tmp_path, torch, transformers)
    root = tmp_path / "els"
    inputs = {n: {"content_id": write_element(root, f"{n}.safetensors", t), "path": f"{n}.safetensors"} for n, t in models.items()}
    inputs["config"] = {"content_id": write_file_element(root, "config.json", config.to_json_string().encode()), "path": "config.json"}
    doc = qwen2_moe_recipe(inputs, "base", ["e0", "e1"], "e2", "config", num_layers=LAYERS, hidden_size=HIDDEN,
                           intermediate_size=48, gate_mode="cheap_embed", prompts=PROMPTS[:2], shared_prompts=PROMPTS[2])
    assemble(parse_recipe(doc), LocalElementSource(root), tmp_path / "moe")
    tensors = {n: a for n, (_, a) in read_tensors(tmp_path / "moe").items()}
    assert tensors["model.layers.0.mlp.gate.weight"].shape == (2, HIDDEN)
    assert tensors["model.layers.1.mlp.shared_expert_gate.weight"].shape == (1, HIDDEN)
    with torch.no_grad():
        moe = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "moe").eval()
        logits = moe(torch.tensor([[1, 5, 9, 42, 100]])).logits
    assert torch.isfinite(logits).all()


def test_cheap_embed_without_prompts_or_with_a_token_beyond_the_vocabulary_is_refused(tmp_path):
    inputs = {n: {"content_id": "0x" + "ab" * 32, "path": f"{n}.safetensors"} for n in ("base", "a", "b")}
    inputs["config"] = {"content_id": "0x" + "cd" * 32, "path": "config.json"}
    with pytest.raises(RecipeError, match="gate mode cheap_embed needs prompts for each of the 2 experts"):
        mixtral_moe_recipe(inputs, "base", ["a", "b"], "config", num_layers=2, hidden_size=8, gate_mode="cheap_embed")
    with pytest.raises(RecipeError, match=r"experts\[0\].positive must be a non-empty list of prompts"):
        mixtral_moe_recipe(inputs, "base", ["a", "b"], "config", num_layers=2, hidden_size=8, gate_mode="cheap_embed",
                           prompts=[{"positive": []}, {"positive": [[1]]}])
    root = tmp_path / "els"
    rng = np.random.default_rng(0)
    element = {"model.embed_tokens.weight": rng.standard_normal((10, 8)).astype(np.float32)}
    doc = {"format": "elements.recipe/v1", "inputs": {"base": {"content_id": write_element(root, "base.safetensors", element),
                                                               "path": "base.safetensors"}},
           "steps": [{"op": "take", "from": "base"},
                     {"op": "prompt_gate", "from": "base", "embedding": "model.embed_tokens.weight", "name": "router",
                      "experts": [{"positive": [[1, 2]]}, {"positive": [[3, 10]]}], "dtype": "F32"}]}
    with pytest.raises(RecipeError, match=r"experts\[1\] has token id 10, beyond the embedding's 10 rows"):
        assemble(parse_recipe(doc), LocalElementSource(root), tmp_path / "out")
    assert not (tmp_path / "out").exists()
