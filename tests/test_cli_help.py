"""``--help`` is complete on every command: it exits 0, every argument has help text, and
every command's epilog shows examples."""

from __future__ import annotations

import argparse

import pytest

from xcm_debias.cli import COMMANDS, build_parser, main


def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """(command path, parser) for every command and sub-command."""
    out = []
    for name, parser in subparsers_of(build_parser()).items():
        out.append((name, parser))
        out += [(f"{name} {sub}", p) for sub, p in subparsers_of(parser).items()]
    return out


def test_every_command_is_registered():
    assert set(subparsers_of(build_parser())) == set(COMMANDS)
    assert {"encode", "fit", "report", "transform", "demo", "world"} <= set(COMMANDS)


@pytest.mark.parametrize(("path", "parser"), all_parsers(), ids=lambda v: str(v))
def test_every_argument_has_help_text(path, parser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{path}: {name} has no help"
        assert len(action.help) >= 10, f"{path}: {name} help is too short: {action.help!r}"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_exits_zero_and_shows_examples(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: xcm-debias {command}")
    assert "examples:" in out
    example_lines = out.split("examples:", 1)[1]
    assert f"xcm-debias {command}" in example_lines


def test_every_sub_command_has_a_help_line():
    top = build_parser()
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            assert set(helps) == set(COMMANDS)
            assert all(h and len(h) > 20 for h in helps.values()), helps
