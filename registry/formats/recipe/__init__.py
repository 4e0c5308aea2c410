"""The recipe format ``elements.recipe/v1``: how a composition is assembled from elements.

A recipe names its inputs (elements, each pinned by content id and, once published, by record
id), lists the tensor steps that build the output weights, the files that go next to them, and
what the output is expected to be (tensor table, content id). The full specification, with
examples, is ``docs/recipes.md``; this module parses it strictly (unknown keys are refused, so a
typo never silently changes a model), normalizes it, and writes the canonical JSON that is hashed
and published (sorted keys, no whitespace, UTF-8, defaults omitted).

Shape of the parsed model::

    Recipe
    ├── inputs:  {name: InputRef(kind, content_id, record, path)}   kind: tensors | file | composition
    ├── steps:   [Take | Stack | Override | Linear | TaskArithmetic | Lora | Cast | Merge]
    ├── files:   [FileSpec(path, source, patch, file)]
    └── output:  OutputSpec(content_id, tensors, files, metadata)
"""

from __future__ import annotations

from .canonical import canonical_json
from .merge_params import MERGE_METHODS, evaluate_parameter
from .model import KINDS as KINDS
from .model import FileSpec, InputRef, OutputFile, OutputSpec, OutputTensor, Recipe
from .parse import RESERVED_OUTPUT_NAMES as RESERVED_OUTPUT_NAMES
from .parse import load_recipe, parse_recipe
from .pins import check_publishable, with_record_ids
from .steps import Step as Step
from .steps import (
    Cast,
    GatePrompts,
    Lora,
    LoraParams,
    Linear,
    Merge,
    MergeSource,
    Override,
    PromptGate,
    RandomInit,
    Rename,
    Selection,
    Stack,
    StackSlice,
    Take,
    TaskArithmetic,
    WeightedSource,
    apply_renames,
)
from .values import CAST_DTYPES, FORMAT, RecipeError, RecipeLimitError, check_relative_path, over_limit

__all__ = [
    "FORMAT",
    "CAST_DTYPES",
    "RecipeError",
    "RecipeLimitError",
    "over_limit",
    "InputRef",
    "Selection",
    "Rename",
    "Take",
    "StackSlice",
    "Stack",
    "Override",
    "WeightedSource",
    "Linear",
    "TaskArithmetic",
    "LoraParams",
    "Lora",
    "Cast",
    "MergeSource",
    "Merge",
    "RandomInit",
    "GatePrompts",
    "PromptGate",
    "MERGE_METHODS",
    "evaluate_parameter",
    "FileSpec",
    "OutputTensor",
    "OutputFile",
    "OutputSpec",
    "Recipe",
    "parse_recipe",
    "load_recipe",
    "canonical_json",
    "with_record_ids",
    "check_publishable",
    "check_relative_path",
    "apply_renames",
]
