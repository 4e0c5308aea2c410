"""Composition commands: ``split`` (a model into elements + recipe), ``assemble-local`` (a recipe
from a local elements directory, no chain), ``compose`` (publish a recipe as a composition) and
``assemble`` (build a published composition by hash). All reuse :func:`registry.compose.engine.assemble`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..files import atomic_write
from ..config import Settings
from ..errors import InputError
from ._app import Result, add_command, add_commit_reveal_option, progress, progress_bars
from .pin_cmd import add_pin_option, check_pinning, pin_published, with_pinning

# Each handler imports the compose layer (numpy) when it runs; --help needs only this copy of
# registry.compose.engine.DEFAULT_MAX_SHARD_SIZE (tests/test_cli_imports.py checks they agree).
DEFAULT_MAX_SHARD_SIZE = 5_000_000_000

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    split = add_command(
        sub,
        common,
        "split",
        cmd_split,
        help="cut a model into element files (one per layer, plus config/tokenizer files) and a recipe",
        examples=(
            "  elements split ./all-MiniLM-L6-v2 --out ./minilm-elements\n"
            "  elements split model.safetensors --out ./parts --by module\n"
            "  elements split ./llama --out ./parts --rule 'model\\.layers\\.(\\d+)\\.=block_\\1' --rule '.*=rest'\n"
            "  elements split ./model --out ./parts --json     the elements and content ids as JSON\n"
        ),
    )
    split.add_argument("model", metavar="MODEL", help=".safetensors file, *.safetensors.index.json or Hugging Face model directory")
    split.add_argument("--out", required=True, metavar="DIR", help="output directory (must not exist unless --force)")
    group = split.add_mutually_exclusive_group()
    group.add_argument("--by", choices=["layer", "module", "none"], default="layer",
                       help="grouping: per transformer layer (default), per top-level module, or one element")
    group.add_argument("--rule", action="append", metavar="REGEX=NAME",
                       help="group tensors whose name matches REGEX into element NAME (\\1 allowed); repeatable, first match wins")
    split.add_argument("--force", action="store_true", help="replace DIR if it exists")

    assemble_local = add_command(
        sub,
        common,
        "assemble-local",
        cmd_assemble_local,
        help="assemble a recipe from a local elements directory (the output of split), no chain needed",
        examples=(
            "  elements assemble-local ./minilm-elements/recipe.json --elements ./minilm-elements -o ./minilm\n"
            "  elements assemble-local three-layers.yaml --elements ./minilm-elements -o ./small --force\n"
            "  elements assemble-local recipe.json --elements ./parts -o ./out --max-shard-size 2GB\n"
            "  elements assemble-local recipe.json --elements ./parts --dry-run --json   plan only: table, predicted id\n"
            "  elements assemble-local merge.yaml --elements ./parts -o ./merged --save-recipe merge.pinned.json\n"
        ),
    )
    assemble_local.add_argument("recipe", metavar="RECIPE", help="recipe file (JSON or YAML, elements.recipe/v1), or a mergekit YAML with --mergekit-models")
    _mergekit_options(assemble_local)
    assemble_local.add_argument("--elements", required=True, metavar="DIR", help="directory holding the recipe's element files")
    assemble_local.add_argument("-o", "--out", metavar="OUT", help="output model directory (must not exist unless --force)")
    assemble_local.add_argument("--force", action="store_true", help="replace OUT (and the --save-recipe file) if it exists")
    assemble_local.add_argument("--max-shard-size", default=str(DEFAULT_MAX_SHARD_SIZE), metavar="SIZE",
                                help="shard the weights above SIZE (default 5GB, as Hugging Face; e.g. 500MB, 64MiB)")
    assemble_local.add_argument("--dry-run", action="store_true", help="plan and check only; print the output table")
    assemble_local.add_argument("--save-recipe", metavar="FILE",
                                help="also write the recipe with its output (content id, tensor table, files) pinned to this result "
                                     "(must not exist unless --force)")

    extract = add_command(
        sub,
        common,
        "extract-lora",
        cmd_extract_lora,
        help="extract a PEFT LoRA adapter from the difference of two models (truncated SVD, as mergekit-extract-lora)",
        examples=(
            "  elements extract-lora ./base ./finetuned --rank 16 -o ./adapter\n"
            "  elements extract-lora base.safetensors ft.safetensors --rank 8 -o ./adapter --exclude 'embed|lm_head|norm'\n"
            "then: elements publish ./adapter/adapter_model.safetensors --kind adapter --parent 0x<base> --parent 0x<fine-tune>\n"
        ),
    )
    extract.add_argument("base", metavar="BASE", help="the base model (.safetensors, index or directory)")
    extract.add_argument("finetuned", metavar="FINETUNED", help="the fine-tuned model, same tensors as BASE")
    extract.add_argument("--rank", required=True, type=int, metavar="R", help="the LoRA rank (largest kept singular values)")
    extract.add_argument("-o", "--out", required=True, metavar="OUT", help="adapter directory (adapter_model.safetensors + adapter_config.json)")
    extract.add_argument("--include", action="append", default=[], metavar="REGEX", help="only tensors whose name matches (repeatable)")
    extract.add_argument("--exclude", action="append", default=[], metavar="REGEX", help="leave out tensors whose name matches (repeatable)")
    extract.add_argument("--sv-epsilon", type=float, default=0.0, metavar="E", help="drop singular values at or below E")
    extract.add_argument("--no-distribute-scale", action="store_true", help="put the singular values in lora_A only")
    extract.add_argument("--base-name", metavar="NAME", help="base_model_name_or_path to write in adapter_config.json")
    extract.add_argument("--force", action="store_true", help="replace OUT if it exists")

    compose = add_command(
        sub,
        common,
        "compose",
        cmd_compose,
        help="publish a recipe as a composition: inputs resolved and verified, assembled, claimed with every input as parent",
        examples=(
            "  elements --network devnet compose three-layers.yaml --license Apache-2.0\n"
            "  elements compose merge.yaml --license CC-BY-NC-4.0 -o ./merged     keep the assembled model\n"
            "  elements compose recipe.json --license MIT --dry-run --json         content id, gas and cost; nothing sent\n"
            "every input needs `record: 0x…` (publish elements first); the licence is checked against every ancestor\n"
        ),
    )
    compose.add_argument("recipe", metavar="RECIPE", help="recipe file (JSON or YAML, elements.recipe/v1) whose inputs name records, or a mergekit YAML with --mergekit-models")
    _mergekit_options(compose)
    compose.add_argument("--license", required=True, metavar="SPDX", help="licence of the composition")
    compose.add_argument("-o", "--out", metavar="OUT", help="keep the assembled model in OUT (default: assembled in a temporary directory)")
    compose.add_argument("--force", action="store_true", help="replace OUT if it exists")
    compose.add_argument("--dry-run", action="store_true", help="assemble, check and estimate; store nothing in Kubo, send nothing")
    add_commit_reveal_option(compose)
    add_pin_option(compose)

    assemble_cmd = add_command(
        sub,
        common,
        "assemble",
        cmd_assemble,
        help="resolve a composition by hash, fetch and verify its elements, build the model into a directory",
        examples=(
            "  elements --network devnet assemble 0x<composition record id> -o ./model\n"
            "  elements assemble 0x<content id> -o ./model --trust 0xPublisher   a content id: the trusted (or earliest) claim\n"
            "  ELEMENTS_IPFS_API=http://127.0.0.1:5001 elements assemble 0x<id> -o ./model --force\n"
            "  elements assemble 0x<id> -o ./model --no-keep     keep no blocks of the data, only the documents\n"
            "the output's content id must equal the claim's; elements-provenance.json names the record, chain and registry,\n"
            "and any earlier claim of the same content under stricter terms (a dispute: warned about on stderr)\n"
        ),
    )
    assemble_cmd.add_argument("hash", metavar="HASH", help="composition record id, or the content id of the weights")
    assemble_cmd.add_argument("-o", "--out", required=True, metavar="OUT", help="output model directory (must not exist unless --force)")
    assemble_cmd.add_argument("--force", action="store_true", help="replace OUT if it exists (only once the new one is complete)")
    assemble_cmd.add_argument("--trust", action="append", metavar="ADDR", help="prefer compositions by this publisher (repeatable)")
    assemble_cmd.add_argument("--max-shard-size", default=str(DEFAULT_MAX_SHARD_SIZE), metavar="SIZE",
                              help="shard the weights above SIZE (default 5GB)")
    keep = assemble_cmd.add_mutually_exclusive_group()
    keep.add_argument("--no-keep", dest="keep", action="store_false", default=None,
                      help="keep only the documents: data not already in the block store is fetched into a "
                      "scratch store and removed once OUT is complete (the model is on disk once); "
                      "`elements config set keep_blocks false` makes it the default")
    keep.add_argument("--keep", dest="keep", action="store_true", default=None,
                      help="keep the fetched data blocks (the default unless keep_blocks is false)")
    assemble_cmd.add_argument("--verify-blocks", action="store_true", default=None,
                              help="hash every copied tensor again, even of elements an earlier assembly from this block store "
                              "checked (default unless verify_blocks is true: those are copied unhashed; fetched data is always hashed)")
    assemble_cmd.add_argument("--no-fsync", dest="fsync", action="store_false", default=None,
                              help="do not flush the output to disk before moving it into place (as cp; a power cut may then "
                              "leave a damaged output, which `elements verify OUT` finds); `fsync_output false` in the config")


def cmd_split(args: argparse.Namespace, settings: Settings) -> Result:
    from ..formats.split import split_model

    with progress(settings, "splitting") as report:
        result = split_model(args.model, args.out, by=args.by, rules=args.rule, force=args.force, progress=report)

    def human() -> None:
        print(f"split {args.model} into {len(result.elements)} elements in {result.out_dir}")
        print(f"model content id {result.content_id}")
        width = max(len(e.name) for e in result.elements)
        for e in result.elements:
            what = f"{e.tensor_count} tensors" if e.kind == "tensors" else "file"
            print(f"  {e.name:<{width}}  {e.content_id}  {e.size:>11,} B  {what}")
        if result.skipped:
            print(f"skipped (not safetensors, never read): {', '.join(result.skipped)}")
        print(f"recipe: {result.recipe_path}")

    return Result(data=result.to_json(), human=human)


def _mergekit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mergekit-models", metavar="MAP",
                        help="RECIPE is a mergekit YAML; MAP (JSON or YAML) maps each of its model names to a recipe input "
                             "({content_id, record} or {content_id, path})")
    parser.add_argument("--mergekit-template", default="model.layers.{n}.", metavar="PREFIX",
                        help="where the layer number is in tensor names, for gradients and slices (default model.layers.{n}.)")


def _recipe_of(args: argparse.Namespace):
    """The recipe named by RECIPE: an elements recipe, or a mergekit YAML converted with its map."""
    if getattr(args, "mergekit_models", None):
        from ..formats.mergekit_config import load_mergekit

        return load_mergekit(args.recipe, args.mergekit_models, args.mergekit_template)
    return None


def cmd_extract_lora(args: argparse.Namespace, settings: Settings) -> Result:
    from ..compose.extract_lora import extract_lora

    result = extract_lora(args.base, args.finetuned, args.out, rank=args.rank, include=args.include, exclude=args.exclude,
                          distribute_scale=not args.no_distribute_scale, sv_epsilon=args.sv_epsilon,
                          base_name=args.base_name, force=args.force)
    human = (f"LoRA adapter for {len(result.modules)} modules (rank {max(result.modules.values())}) in {result.out_dir}; "
             f"publish it: elements publish {result.out_dir}/adapter_model.safetensors --kind adapter --parent 0x<base record>")
    return Result(data=result.to_json(), human=human)


def cmd_assemble_local(args: argparse.Namespace, settings: Settings) -> Result:
    from ..compose.engine import assemble, inspect_recipe, parse_size
    from ..formats.recipe import load_recipe
    from ..compose.sources import LocalElementSource

    recipe = _recipe_of(args) or load_recipe(Path(args.recipe))
    source = LocalElementSource(args.elements)
    max_shard_size = parse_size(args.max_shard_size)
    if args.dry_run:
        report = inspect_recipe(recipe, source)
        predicted = report["content_id"] or "(known after assembly: derived tensors)"
        return Result(data=report, human=f"{report['tensor_count']} tensors, {report['total_bytes']:,} bytes; content id {predicted}")
    if not args.out:
        raise InputError("assemble-local needs -o OUT (or --dry-run)")
    if args.save_recipe:  # checked before the work, not after it
        saved = Path(args.save_recipe)
        if saved.is_dir() or saved.resolve() == Path(args.out).resolve():
            raise InputError(f"--save-recipe {saved} is a directory (or the -o directory); give a file such as {saved}.json")
        if saved.exists() and not args.force:
            raise InputError(f"--save-recipe {saved} exists; choose another file or pass --force to replace it")
    with progress(settings, "assembling") as bar:
        result = assemble(recipe, source, args.out, force=args.force, max_shard_size=max_shard_size, progress=bar)
    if args.save_recipe:
        pinned = recipe.with_output(result.output_spec())
        text = json.dumps(pinned.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        atomic_write(Path(args.save_recipe), text)

    def human() -> None:
        print(f"assembled {len(result.tensors)} tensors ({result.total_bytes:,} bytes) into {result.path}")
        print(f"content id {result.content_id}" + (" (matches the recipe)" if recipe.output.content_id else ""))
        print(f"weights: {', '.join(result.weight_files)}; files: {', '.join(result.files) or 'none'}")

    return Result(data=result.to_json(), human=human)


def cmd_compose(args: argparse.Namespace, settings: Settings) -> Result:
    from ..publish.model import publish_composition
    from .elements_cmd import print_report, commit_reveal_for, session

    if args.out and args.dry_run:
        raise InputError("--dry-run assembles in a temporary directory; drop -o")
    pin = check_pinning(args, settings)
    with session(settings, write=True) as (registry, sources, resolver), progress_bars(settings) as bars:
        fetched, assembled = bars.bar("fetching"), bars.bar("assembling")
        report = publish_composition(
            registry, resolver, _recipe_of(args) or Path(args.recipe), license=args.license, out=args.out, force=args.force,
            dry_run=args.dry_run, progress=assembled, fetch_progress=fetched, work_dir=settings.home / "tmp",
            commit_reveal=commit_reveal_for(args, settings, registry, bars),
        )
        pinned = pin_published(pin, settings, sources, [report.publish], bars)

    def human() -> None:
        print_report(report.publish, "composition")
        claim = report.claim
        print(f"composition {claim.record_id}: content id {claim.record.content_id}, "
              f"{len(report.recipe.inputs)} inputs, recipe {report.recipe_cid}")
        if args.out:
            print(f"assembled model kept in {args.out}")

    return with_pinning(Result(data=report.to_json(), human=human), pinned)


def cmd_assemble(args: argparse.Namespace, settings: Settings) -> Result:
    from ..compose.chain_source import assemble_composition
    from ..compose.engine import parse_size
    from ..records.disputes import block_text
    from .elements_cmd import session
    from .resolve_cmd import warn_disputes

    max_shard_size = parse_size(args.max_shard_size)
    with session(settings) as (_, _, resolver), progress_bars(settings) as bars:
        fetched, assembled = bars.bar("fetching"), bars.bar("assembling")
        outcome = assemble_composition(
            resolver, args.hash, args.out, force=args.force, trust=args.trust or settings.trust,
            max_shard_size=max_shard_size, fetch_progress=fetched, progress=assembled, keep=args.keep if args.keep is not None else settings.file.get("keep_blocks", True),
            verify_blocks=bool(args.verify_blocks or settings.file.get("verify_blocks", False)),
            durable=args.fsync if args.fsync is not None else settings.file.get("fsync_output", True),
        )
    result, node = outcome.result, outcome.composition

    def human() -> None:
        r = node.record
        others = len(outcome.candidates) - 1
        print(f"composition {r.record_id} by {r.publisher} ({node.license.spdx_id if node.license else r.license_id}, {block_text(r)})"
              + (f"; {others} other claim(s) of this hash" if others > 0 else ""))
        if r.yanked:
            print("WARNING: its publisher yanked this composition")
        print(f"{len(outcome.graph)} records resolved in {outcome.graph.round_trips} RPC round trips; every element verified")
        print(f"assembled {len(result.tensors)} tensors ({result.total_bytes:,} bytes) into {result.path}")
        print(f"content id {result.content_id} (matches the claim)")
        print(f"weights: {', '.join(result.weight_files)}; files: {', '.join(result.files) or 'none'}; provenance: elements-provenance.json")
        warn_disputes(outcome.disputes, outcome.graph.input_names())

    return Result(data=outcome.to_json(), human=human)
