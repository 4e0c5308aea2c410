"""LoRA extraction: a PEFT adapter from the difference of two models (``elements extract-lora``).

For every 2-D ``*.weight`` tensor that differs between the base and the fine-tune, the task
vector ``Δ = W_ft − W_base`` (float64) is factored by SVD and truncated to ``rank`` as mergekit's
``mergekit-extract-lora`` does: ``A = √S·Vᵀ`` (r × in), ``B = U·√S`` (out × r) (``distribute_scale``;
otherwise ``A = S·Vᵀ``, ``B = U``), so ``B @ A`` is the best rank-r approximation of Δ
(Eckart–Young). The adapter is written in PEFT's layout (``adapter_model.safetensors`` with
``base_model.model.<module>.lora_A.weight`` / ``lora_B.weight``, and ``adapter_config.json`` with
``lora_alpha = r`` so the scale is 1), and merges back with the recipe ``lora`` op.

An SVD is LAPACK's, whose last bits vary with the machine: the adapter is not re-derived by
``verify`` but published as an element (``elements publish OUT/adapter_model.safetensors --kind
adapter --parent BASE --parent FINETUNE``), pinned by its content id like any element.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..formats.checkpoint import open_tensors, read_checkpoint
from ..formats.safetensors_writer import write_safetensors
from ..files import replace_directory, temporary_sibling
from ..limits import LORA_RANK
from . import ops

__all__ = ["ExtractionResult", "extract_lora", "ADAPTER_WEIGHTS", "ADAPTER_CONFIG"]

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class ExtractionResult:
    out_dir: Path
    modules: dict[str, int] = field(default_factory=dict)  # module -> rank used
    unchanged: int = 0
    excluded: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out_dir), "modules": self.modules, "unchanged_tensors": self.unchanged,
                "excluded": self.excluded}


def _float64(raw: memoryview, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    return ops.to_float64(np.frombuffer(raw, dtype=ops.storage_dtype(dtype)), dtype).reshape(shape)


def extract_lora(base: str | os.PathLike, finetuned: str | os.PathLike, out: str | os.PathLike, *, rank: int,
                 include: Sequence[str] = (), exclude: Sequence[str] = (), distribute_scale: bool = True,
                 sv_epsilon: float = 0.0, base_name: str | None = None, force: bool = False) -> ExtractionResult:
    """Write a PEFT LoRA adapter for ``finetuned`` over ``base`` into the directory ``out``.

    Raises:
        InputError: a rank out of range, models with other tensor names or shapes, a changed tensor
            that is not a 2-D weight (not representable as LoRA: exclude it), OUT exists without force.
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= LORA_RANK:
        raise InputError(f"--rank must be an integer from 1 to {LORA_RANK}, got {rank!r}")
    if not sv_epsilon >= 0:
        raise InputError(f"--sv-epsilon must be >= 0, got {sv_epsilon!r}")
    patterns_in = [re.compile(p) for p in include]
    patterns_out = [re.compile(p) for p in exclude]
    out = Path(out)
    if out.exists() and not force:
        raise InputError(f"{out} exists; choose another -o or pass --force")
    base_ckpt, ft_ckpt = read_checkpoint(base), read_checkpoint(finetuned)
    if set(base_ckpt.tensors) != set(ft_ckpt.tensors):
        only = sorted(set(base_ckpt.tensors) ^ set(ft_ckpt.tensors))
        raise InputError(f"the models do not have the same tensors ({', '.join(only[:5])} in one only); "
                         "a LoRA adapter can only change existing weights")
    result = ExtractionResult(out)
    factors: list[tuple[str, str, tuple[int, ...], np.ndarray]] = []
    with open_tensors(base_ckpt) as base_views, open_tensors(ft_ckpt) as ft_views:
        for name in sorted(base_ckpt.tensors):
            b_info, f_info = base_ckpt.tensors[name], ft_ckpt.tensors[name]
            if b_info.shape != f_info.shape:
                raise InputError(f"tensor {name!r} is {list(b_info.shape)} in the base and {list(f_info.shape)} in the fine-tune")
            if bytes(base_views[name]) == bytes(ft_views[name]) and b_info.dtype == f_info.dtype:
                result.unchanged += 1
                continue
            if (patterns_in and not any(p.search(name) for p in patterns_in)) or any(p.search(name) for p in patterns_out):
                result.excluded.append(name)
                continue
            if len(f_info.shape) != 2 or not name.endswith(".weight") or f_info.dtype not in ops.FLOAT_DTYPES \
                    or b_info.dtype not in ops.FLOAT_DTYPES:
                raise InputError(
                    f"tensor {name!r} ({f_info.dtype}{list(f_info.shape)}) differs but is not a 2-D float weight, so a LoRA "
                    "adapter cannot hold it; exclude it (--exclude REGEX) or publish the fine-tune as a delta (elements publish-delta)"
                )
            delta = _float64(ft_views[name], f_info.dtype, f_info.shape) - _float64(base_views[name], b_info.dtype, b_info.shape)
            u, s, vh = np.linalg.svd(delta, full_matrices=False)
            r = min(rank, s.shape[0])
            if sv_epsilon > 0:
                r = max(1, min(int(np.count_nonzero(s > sv_epsilon)), r))
            if distribute_scale:
                root = np.sqrt(s[:r])
                a, b = root[:, None] * vh[:r], u[:, :r] * root[None, :]
            else:
                a, b = s[:r, None] * vh[:r], u[:, :r]
            module = name[: -len(".weight")]
            dtype = f_info.dtype if f_info.dtype in ops.CASTABLE_DTYPES else "F32"
            factors.append((f"base_model.model.{module}.lora_A.weight", dtype, a.shape, ops.from_float64(a.reshape(-1), dtype)))
            factors.append((f"base_model.model.{module}.lora_B.weight", dtype, b.shape, ops.from_float64(b.reshape(-1), dtype)))
            result.modules[module] = r
    if not result.modules:
        raise InputError("the fine-tune changes no 2-D weight (after --include/--exclude); there is no LoRA to extract")
    top = max(result.modules.values())
    others = {m: r for m, r in sorted(result.modules.items()) if r != top}
    config = {
        "peft_type": "LORA", "task_type": None, "base_model_name_or_path": base_name or str(base),
        "r": top, "lora_alpha": top, "rank_pattern": others, "alpha_pattern": dict(others),
        "target_modules": sorted(result.modules), "use_rslora": False, "fan_in_fan_out": False,
        "bias": "none", "lora_dropout": 0.0, "modules_to_save": None, "inference_mode": True,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(out)
    try:
        temporary.mkdir()
        write_safetensors(temporary / ADAPTER_WEIGHTS, [(n, d, s, a) for n, d, s, a in factors], metadata={"format": "pt"})
        (temporary / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        replace_directory(temporary, out, replace=True)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return result
