"""LoRA extraction (registry/compose/extract_lora.py): a PEFT adapter from two models, which the
recipe `lora` op merges back into the base to give the fine-tune (exactly up to rounding when the
change has the extracted rank, the best rank-r approximation otherwise)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from registry.compose.engine import assemble
from registry.compose.extract_lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, extract_lora
from registry.compose.sources import LocalElementSource
from registry.errors import InputError
from registry.formats.recipe import LoraParams, parse_recipe
from registry.formats.safetensors_writer import write_safetensors
from tests.compose_support import leftovers, read_tensors, write_element, write_file_element

SHAPES = {"model.layers.0.q_proj.weight": (24, 32), "model.layers.0.v_proj.weight": (24, 32),
          "model.layers.0.mlp.weight": (40, 32), "model.norm.weight": (32,)}


def _write(path, tensors):
    write_safetensors(path, [(n, "F32", a.shape, np.ascontiguousarray(a, dtype=np.float32)) for n, a in sorted(tensors.items())])
    return path


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(8)
    base = {n: rng.standard_normal(s).astype(np.float32) for n, s in SHAPES.items()}
    tuned = dict(base)
    for name in ("model.layers.0.q_proj.weight", "model.layers.0.v_proj.weight"):
        out_dim, in_dim = SHAPES[name]
        low_rank = (rng.standard_normal((out_dim, 3)) * 0.1) @ (rng.standard_normal((3, in_dim)) * 0.1)
        tuned[name] = (base[name] + low_rank).astype(np.float32)
    return _write(tmp_path / "base.safetensors", base), _write(tmp_path / "tuned.safetensors", tuned), base, tuned


def _merge_back(tmp_path, base_path, adapter_dir):
    root = tmp_path / "els"
    base = {n: a for n, (_, a) in read_tensors(base_path).items()}
    adapter = {n: a for n, (_, a) in read_tensors(adapter_dir / ADAPTER_WEIGHTS).items()}
    inputs = {
        "base": {"content_id": write_element(root, "base.safetensors", base), "path": "base.safetensors"},
        "adapter": {"content_id": write_element(root, "adapter.safetensors", adapter), "path": "adapter.safetensors"},
        "cfg": {"content_id": write_file_element(root, "adapter_config.json", (adapter_dir / ADAPTER_CONFIG).read_bytes()),
                "path": "adapter_config.json"},
    }
    doc = {"format": "elements.recipe/v1", "inputs": inputs,
           "steps": [{"op": "take", "from": "base"}, {"op": "lora", "adapter": "adapter", "config": "cfg"}]}
    assemble(parse_recipe(doc), LocalElementSource(root), tmp_path / "merged")
    return {n: a for n, (_, a) in read_tensors(tmp_path / "merged").items()}


def test_a_rank_3_change_extracted_at_rank_3_merges_back_to_the_fine_tune(pair, tmp_path):
    base_path, tuned_path, base, tuned = pair
    result = extract_lora(base_path, tuned_path, tmp_path / "adapter", rank=3, base_name="org/base")
    assert result.modules == {"model.layers.0.q_proj": 3, "model.layers.0.v_proj": 3} and result.unchanged == 2
    config = json.loads((tmp_path / "adapter" / ADAPTER_CONFIG).read_text())
    params = LoraParams.from_peft_config(config, "adapter_config.json")
    assert (params.r, params.lora_alpha, params.target_modules) == (3, 3.0, ("model.layers.0.q_proj", "model.layers.0.v_proj"))
    assert config["base_model_name_or_path"] == "org/base"
    merged = _merge_back(tmp_path, base_path, tmp_path / "adapter")
    for name in SHAPES:
        if name in result.excluded or name.endswith(("mlp.weight", "norm.weight")):
            assert np.array_equal(merged[name], base[name])
            continue
        # the factors are rounded to F32 once each, then B @ A is added in float64 and rounded once
        assert np.max(np.abs(merged[name] - tuned[name])) <= 4 * np.max(np.spacing(np.abs(tuned[name])))


def test_a_lower_rank_gives_the_best_approximation_of_that_rank(pair, tmp_path):
    base_path, tuned_path, base, tuned = pair
    extract_lora(base_path, tuned_path, tmp_path / "adapter", rank=1)
    merged = _merge_back(tmp_path, base_path, tmp_path / "adapter")
    name = "model.layers.0.q_proj.weight"
    delta = tuned[name].astype(np.float64) - base[name]
    singular = np.linalg.svd(delta, compute_uv=False)
    residual = np.linalg.norm(merged[name].astype(np.float64) - tuned[name])
    assert residual == pytest.approx(np.sqrt(np.sum(singular[1:] ** 2)), rel=1e-4)


def test_a_changed_norm_cannot_be_a_lora_and_is_named_unless_excluded(pair, tmp_path):
    base_path, _, base, tuned = pair
    tuned = dict(tuned, **{"model.norm.weight": base["model.norm.weight"] + 1})
    tuned_path = _write(tmp_path / "tuned2.safetensors", tuned)
    with pytest.raises(InputError, match=r"tensor 'model.norm.weight' \(F32\[32\]\) differs but is not a 2-D float weight.*--exclude"):
        extract_lora(base_path, tuned_path, tmp_path / "adapter", rank=2)
    assert not (tmp_path / "adapter").exists() and not leftovers(tmp_path, "adapter")
    result = extract_lora(base_path, tuned_path, tmp_path / "adapter", rank=2, exclude=[r"norm"])
    assert result.excluded == ["model.norm.weight"]


@pytest.mark.parametrize("rank", [0, -1, 10**9, True])
def test_a_bad_rank_is_refused(pair, tmp_path, rank):
    base_path, tuned_path, _, _ = pair
    with pytest.raises(InputError, match="--rank must be an integer"):
        extract_lora(base_path, tuned_path, tmp_path / "adapter", rank=rank)


def test_an_existing_output_is_kept_unless_forced(pair, tmp_path):
    base_path, tuned_path, _, _ = pair
    (tmp_path / "adapter").mkdir()
    with pytest.raises(InputError, match="exists; choose another -o or pass --force"):
        extract_lora(base_path, tuned_path, tmp_path / "adapter", rank=2)
    extract_lora(base_path, tuned_path, tmp_path / "adapter", rank=2, force=True)
    assert (tmp_path / "adapter" / ADAPTER_WEIGHTS).exists()


def test_models_with_other_tensors_are_refused(pair, tmp_path):
    base_path, _, base, _ = pair
    other = _write(tmp_path / "other.safetensors", {"x.weight": np.zeros((2, 2), dtype=np.float32)})
    with pytest.raises(InputError, match="do not have the same tensors"):
        extract_lora(base_path, other, tmp_path / "adapter", rank=2)


def test_peft_applying_the_adapter_at_run_time_agrees_with_the_merged_model(pair, tmp_path):
    torch = pytest.importorskip("torch", reason="torch is installed by scripts/setup.sh test (the [test] extra)")
    peft = pytest.importorskip("peft", reason="peft comes with mergekit in the [test] extra")
    from safetensors.torch import load_file
    from torch import nn

    base_path, tuned_path, _, tuned = pair
    extract_lora(base_path, tuned_path, tmp_path / "adapter", rank=3, exclude=["norm"])
    merged = _merge_back(tmp_path, base_path, tmp_path / "adapter")

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = nn.Module()
            self.model.layers = nn.ModuleList([nn.Module()])
            for name in ("q_proj", "v_proj", "mlp"):
                out_dim, in_dim = SHAPES[f"model.layers.0.{name}.weight"]
                setattr(self.model.layers[0], name, nn.Linear(in_dim, out_dim, bias=False))
            self.model.norm = nn.Module()
            self.model.norm.weight = nn.Parameter(torch.ones(32))

        def forward(self, x):
            layer = self.model.layers[0]
            x = x * self.model.norm.weight
            return torch.cat([layer.q_proj(x), layer.v_proj(x), layer.mlp(x)], dim=-1)

    with torch.no_grad():
        runtime = Tiny()
        runtime.load_state_dict(load_file(str(base_path)))
        runtime = peft.PeftModel.from_pretrained(runtime, str(tmp_path / "adapter")).eval()
        static = Tiny()
        static.load_state_dict({n: torch.from_numpy(a.copy()) for n, a in merged.items()})
        plain = Tiny()
        plain.load_state_dict(load_file(str(base_path)))
        x = torch.from_numpy(np.random.default_rng(1).standard_normal((16, 32)).astype(np.float32))
        a, b, without = runtime(x).numpy(), static(x).numpy(), plain(x).numpy()
    # both in float32: PEFT adds x·Aᵀ·Bᵀ to x·Wᵀ, the merged model computes x·(W + B·A)ᵀ; the two
    # orders differ by float32 rounding of 32-term dot products (measured ~1e-7 of the output scale)
    assert np.max(np.abs(a - b)) <= 2.0**-18 * np.max(np.abs(b))
    assert np.max(np.abs(a - without)) > 2.0**-8 * np.max(np.abs(b))  # and the adapter does change the output
