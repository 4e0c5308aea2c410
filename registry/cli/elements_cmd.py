"""Element commands: ``id`` (content ids). ``publish`` / ``resolve`` join this module later."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import Settings
from ..elements.content_id import directory_ids, file_content_id, is_weights_path, manifest_of
from ..errors import InputError
from ._app import Result, add_command

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub,
        common,
        "id",
        cmd_id,
        help="content id of a file, a .safetensors file, a sharded checkpoint or a model directory",
        examples=(
            "  elements id model.safetensors                 the weights' content id (layout independent)\n"
            "  elements id ./all-MiniLM-L6-v2                a directory: its weights' content id\n"
            "  elements id ./all-MiniLM-L6-v2 --json         + tensor table and every other file's id\n"
            "  elements id model.safetensors.index.json      a sharded checkpoint as one tensor set\n"
            "  elements id config.json                       a plain file's content id\n"
        ),
    )
    parser.add_argument("path", metavar="PATH", help="file, .safetensors, *.safetensors.index.json or model directory")


def cmd_id(args: argparse.Namespace, settings: Settings) -> Result:
    path = Path(args.path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory; check the path")
    if path.is_dir():
        ids = directory_ids(path)
        data = {"kind": "directory", **ids.to_json()}
        return Result(data=data, human=str(ids.content_id))
    if is_weights_path(path):
        manifest = manifest_of(path)
        data = {
            "kind": "tensors",
            "path": str(path),
            "content_id": str(manifest.content_id),
            "tensor_count": len(manifest.entries),
            "size": manifest.size,
            "manifest": manifest.to_json(),
        }
        return Result(data=data, human=str(manifest.content_id))
    file_id = file_content_id(path)
    data = {"kind": "file", "path": str(path), "content_id": str(file_id), "size": path.stat().st_size}
    return Result(data=data, human=str(file_id))
