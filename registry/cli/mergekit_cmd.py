"""``convert-mergekit``: a mergekit YAML written as the equivalent ``elements.recipe/v1`` file.

The conversion is :func:`registry.formats.mergekit_config.mergekit_document` (the same one
``compose`` and ``assemble-local`` apply to a mergekit YAML given with ``--mergekit-models``), so
the written recipe assembles to the same bits; a field Elements does not support is refused by
name and nothing is written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import Settings
from ..errors import InputError
from ._app import Result, add_command

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub,
        common,
        "convert-mergekit",
        cmd_convert_mergekit,
        help="write a mergekit YAML as the equivalent elements.recipe/v1 (model names mapped to inputs by MAP)",
        examples=(
            "  elements convert-mergekit ties.yml --mergekit-models models.yaml -o ties.recipe.json\n"
            "  elements convert-mergekit slerp.yml --mergekit-models models.json -o slerp.json --force   replace it\n"
            "then: elements assemble-local ties.recipe.json --elements ./parts -o ./merged   or   elements compose …\n"
        ),
    )
    parser.add_argument("config", metavar="CONFIG", help="the mergekit YAML (merge_method, models or slices, …)")
    parser.add_argument("--mergekit-models", required=True, metavar="MAP",
                        help="JSON or YAML mapping each model name of CONFIG to a recipe input ({content_id, record} or {content_id, path})")
    parser.add_argument("--mergekit-template", default="model.layers.{n}.", metavar="PREFIX",
                        help="where the layer number is in tensor names, for gradients and slices (default model.layers.{n}.)")
    parser.add_argument("-o", "--out", required=True, metavar="RECIPE", help="the recipe file to write (JSON)")
    parser.add_argument("--force", action="store_true", help="replace RECIPE if it exists")


def cmd_convert_mergekit(args: argparse.Namespace, settings: Settings) -> Result:
    from ..files import atomic_write
    from ..formats.mergekit_config import mergekit_document
    from ..formats.recipe import parse_recipe

    recipe = parse_recipe(mergekit_document(args.config, args.mergekit_models, args.mergekit_template))
    normalized = json.loads(recipe.canonical_json())
    out = Path(args.out)
    if out.is_dir():
        raise InputError(f"{out} is a directory; give the recipe file's path with -o")
    try:
        atomic_write(out, json.dumps(normalized, indent=2, ensure_ascii=False) + "\n", exclusive=not args.force)
    except FileExistsError:
        raise InputError(f"{out} exists; pass --force to replace it") from None
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from None
    steps = ", ".join(step["op"] for step in normalized["steps"])
    human = (f"{out}: elements.recipe/v1 with {len(normalized['inputs'])} inputs and steps {steps} "
             f"(recipe id {recipe.content_id()}); assemble it: elements assemble-local {out} --elements DIR -o OUT")
    return Result(data={"path": str(out), "recipe_id": str(recipe.content_id()), "steps": len(normalized["steps"])}, human=human)
