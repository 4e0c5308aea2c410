"""The one output-table comparison (registry.compose.outputs): assembly refuses the first difference,
verification lists every one, and both see the same differences."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from registry.compose.outputs import OutputMismatchError, check_output_table, output_table_problems, table_differences
from registry.compose.plan import plan_tensors
from registry.compose.sources import LocalElementSource
from registry.formats.recipe import OutputSpec, OutputTensor, parse_recipe
from tests.compose_support import write_element


@pytest.fixture
def planned(tmp_path):
    """A recipe copying two tensors of one element, its plan, and the honest output table."""
    content_id = write_element(tmp_path, "a.safetensors", {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.ones(3, dtype=np.float32),
    })
    recipe = parse_recipe({"format": "elements.recipe/v1",
                           "inputs": {"a": {"kind": "tensors", "content_id": content_id, "path": "a.safetensors"}},
                           "steps": [{"op": "take", "from": "a"}]})
    element = LocalElementSource(tmp_path).open(recipe.inputs["a"])
    try:
        plan = plan_tensors(recipe, {"a": element})
        table = tuple(OutputTensor(name, p.dtype, tuple(p.shape), str(p.digest)) for name, p in sorted(plan.tensors.items()))
        yield recipe, plan, OutputSpec(content_id=plan.predicted_content_id(), tensors=table)
    finally:
        element.close()


def test_an_honest_table_has_no_difference(planned):
    recipe, plan, honest = planned
    recipe = recipe.with_output(honest)
    check_output_table(recipe, plan)
    assert output_table_problems(recipe, plan) == []


def test_a_recipe_without_a_table_is_not_compared(planned):
    recipe, plan, _ = planned
    assert table_differences(recipe, plan) == table_differences(recipe.with_output(OutputSpec()), plan)
    assert output_table_problems(recipe, plan) == []


def test_a_copy_with_another_digest_is_refused_by_assembly_and_reported_by_verification(planned):
    recipe, plan, honest = planned
    rows = tuple(replace(t, digest=honest.tensors[0].digest) if t.name == "w" else t for t in honest.tensors)
    recipe = recipe.with_output(replace(honest, tensors=rows, content_id=None))
    with pytest.raises(OutputMismatchError, match=f"output tensor 'w' would be copied with digest {plan.tensors['w'].digest} "
                                             f"but the recipe's table says {honest.tensors[0].digest}"):
        check_output_table(recipe, plan)
    assert output_table_problems(recipe, plan) == [
        f"its recipe's output table says w is {honest.tensors[0].digest} but its steps copy {plan.tensors['w'].digest}"
    ]


def test_every_difference_is_listed_for_verification_and_the_first_refused_for_assembly(planned):
    recipe, plan, honest = planned
    rows = tuple(replace(t, shape=(9,)) for t in honest.tensors)
    recipe = recipe.with_output(replace(honest, tensors=rows, content_id=None))
    with pytest.raises(OutputMismatchError, match=r"output tensor 'b' would be F32\[3\] but the recipe's table says F32\[9\]"):
        check_output_table(recipe, plan)
    assert output_table_problems(recipe, plan) == [
        "its recipe's output table says b is F32[9] but its steps give F32[3]",
        "its recipe's output table says w is F32[9] but its steps give F32[2, 3]",
    ]


def test_a_tensor_the_table_lacks_is_named_by_both(planned):
    recipe, plan, honest = planned
    recipe = recipe.with_output(replace(honest, tensors=honest.tensors[1:], content_id=None))
    with pytest.raises(OutputMismatchError, match="the recipe's steps do not match its output table: it produces b not in the table"):
        check_output_table(recipe, plan)
    assert output_table_problems(recipe, plan) == [
        "its recipe's steps produce 1 tensor(s) its output table lacks and lack 0 it lists (e.g. b); the recipe is inconsistent"
    ]


def test_a_content_id_the_copies_do_not_give_is_refused_by_assembly(planned):
    recipe, plan, honest = planned
    other = "0x" + "11" * 32
    recipe = recipe.with_output(replace(honest, content_id=other))
    with pytest.raises(OutputMismatchError, match=f"give content id {plan.predicted_content_id()} but it expects {other}"):
        check_output_table(recipe, plan)
    # Verification compares the claim's content id with the model's instead (registry.provenance).
    assert output_table_problems(recipe, plan) == []
