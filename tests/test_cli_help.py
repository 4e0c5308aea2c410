"""Every command and sub-command of the parser tree has help with examples, and usage errors are
one line with exit 2 (a JSON object with --json)."""

from __future__ import annotations

import argparse
import json

import pytest

from registry.cli import COMMAND_GROUPS, build_parser, main
from tests.cli_support import elements, elements_process, one_line_error


def command_paths(parser: argparse.ArgumentParser | None = None, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (command path, parser) of the tree under ``parser``, depth first."""
    parser = parser or build_parser()
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.append(((*prefix, name), child))
                found.extend(command_paths(child, (*prefix, name)))
    return found


PATHS = [path for path, _ in command_paths()]


def test_the_tree_holds_every_command_of_the_design():
    top = {path[0] for path in PATHS}
    design = {"demo", "devnet", "deploy", "split", "publish", "publish-model", "compose", "resolve", "assemble",
              "verify", "show", "ls", "id", "cid", "car"}
    assert design <= top
    assert {("car", "export"), ("car", "import"), ("keys", "new"), ("keys", "import"), ("keys", "list"),
            ("config", "network", "add"), ("config", "trust", "rm")} <= set(PATHS)


def test_every_top_level_command_is_listed_under_a_job_in_the_help():
    grouped = {name for _, names in COMMAND_GROUPS for name in names}
    assert {path[0] for path in PATHS} == grouped


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_every_command_has_help_with_examples(path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*path, "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert f"usage: elements {' '.join(path)}" in out
    examples = out.split("examples:\n", 1)
    assert len(examples) == 2, f"`elements {' '.join(path)} --help` has no examples"
    assert "elements" in examples[1] and "--json" in out


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_every_command_is_a_handler_or_a_group_of_them(path):
    parser = dict(command_paths())[path]
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert parser.get_default("handler") is not None or groups


def test_top_level_help_lists_commands_by_job_as_a_real_process():
    result = elements_process(None, "--help")
    assert result.returncode == 0 and result.stderr == ""
    for title, names in COMMAND_GROUPS:
        assert f"\n{title}:\n" in result.stdout
    assert "ELEMENTS_NO_PROGRESS" in result.stdout and "exit codes: 0" in result.stdout
    assert result.stdout.index("job 1, publish:") < result.stdout.index("job 2, resolve and assemble:") < result.stdout.index("job 3, verify:")


def test_version_exits_0():
    result = elements(None, "--version")
    assert result.returncode == 0 and result.stdout.startswith("elements ")


def test_no_command_prints_help_and_exits_2():
    result = elements(None)
    assert result.returncode == 2 and "job 1, publish:" in result.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["verfy", "x"], "did you mean `verify`?"),
        (["car", "exprot", "x"], "did you mean `export`?"),
        (["publish", "x.safetensors"], "the following arguments are required: --license (see `elements publish --help`)"),
        (["assemble", "0x" + "ab" * 32], "-o/--out"),
        (["keys"], "choose an action: elements keys new|import|list"),
        (["car"], "choose an action: elements car export|import"),
        (["config", "set", "colour", "blue"], "'colour' is not a key; choose from cache_limit, fetch_deadline, fetch_max_bytes, fetch_min_rate, fetch_timeout, fsync_output, gateways"),
        (["devnet", "--port", "eighty"], "invalid int value: 'eighty'"),
    ],
)
def test_usage_errors_are_one_line_exit_2_and_point_at_help(args, expected, tmp_path):
    line = one_line_error(elements(tmp_path, *args))
    assert expected in line and "--help`" in line


def test_a_usage_error_with_json_is_one_json_object(tmp_path):
    result = elements(tmp_path, "--json", "publish")
    assert result.returncode == 2 and result.stderr == ""
    error = json.loads(result.stdout)
    assert error["ok"] is False and error["error"] == "UsageError" and error["exit_code"] == 2
    assert "--license" in error["message"]


def test_no_command_with_json_is_a_json_usage_error():
    result = elements(None, "--json")
    assert result.returncode == 2 and json.loads(result.stdout)["message"].startswith("choose a command")


def test_a_repeated_rpc_url_keeps_every_value_given_before_and_after_the_command_for_that_line_only():
    parser = build_parser()
    assert parser.parse_args(["--rpc-url", "http://a", "show", "0x1", "--rpc-url", "http://b"]).rpc_url == ["http://a", "http://b"]
    assert parser.parse_args(["show", "0x1", "--rpc-url", "http://c"]).rpc_url == ["http://c"]
    assert not hasattr(parser.parse_args(["show", "0x1"]), "rpc_url")
