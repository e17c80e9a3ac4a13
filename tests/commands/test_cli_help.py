"""Every command's --help renders what its authors wrote (defaults in
brackets survive, no `<list[Path]>` metavars, every option explained, usage examples that run),
and an unexpected exception is one line with a hint to `--debug`, which shows the traceback."""

from __future__ import annotations

import re

import pytest
from test_bad_input import run_cli

import cli


def _commands():
    import typer

    root = typer.main.get_command(cli.app)

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in sorted(subs.items()):
                yield from walk(sub, path + [name])
        else:
            yield path, cmd

    return list(walk(root, []))


COMMANDS = [" ".join(p) for p, _ in _commands()]


def _flat(text: str) -> str:
    """Whitespace-normalised; the wrapper may break lines after a hyphen."""
    return re.sub(r"(\w-)\s+(?=\w)", r"\1", " ".join(text.split()))


@pytest.mark.parametrize("name", COMMANDS)
def test_help_renders_every_option_as_written(name, capsys, monkeypatch):
    cmd = dict((" ".join(p), c) for p, c in _commands())[name]
    monkeypatch.setenv("COLUMNS", "100")
    code, out, err = run_cli(capsys, monkeypatch, *name.split(), "--help")
    assert code == 0, err
    flat = _flat(out)
    assert "list[" not in out and "<bool>" not in out, out
    for p in cmd.params:
        if p.name == "help" or getattr(p, "hidden", False):
            continue
        helptext = getattr(p, "help", None)
        assert helptext and helptext.strip(), f"raviso {name}: {p.opts} has no help"
        # what the author wrote, brackets included, is what the user reads
        assert _flat(helptext) in flat, (p.opts, helptext, out)


def test_bracketed_defaults_survive():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys; sys.argv=['raviso','pretrain',"
                          "'--help']; import cli; cli.main()"], capture_output=True, text=True,
                         env={"COLUMNS": "200", "PATH": ""}).stdout
    assert "Per-gene observation variance [unit]." in out
    assert "[auto: when small]" in out and "[files]" in out


def test_submit_examples_carry_the_required_out(capsys, monkeypatch):
    code, out, _ = run_cli(capsys, monkeypatch, "submit", "--help")
    flat = _flat(out)
    examples = re.findall(r"raviso submit -- (\w+) ([^.;)]*)", flat)
    assert examples, out
    for command, rest in examples:
        if command in ("pretrain", "cv", "fit"):
            assert "--out" in rest, (command, rest)


def one_line_error(capsys, monkeypatch, tmp_path, error: Exception) -> str:
    """`raviso report` failing with `error`: its one stderr line (exit 1, no traceback); with
    --debug the exception itself reaches the console script, which prints the traceback."""
    import raviso.evaluate.report.render as report

    def fail(*a, **k):
        raise error

    monkeypatch.setattr(report, "write_report", fail)
    code, out, err = run_cli(capsys, monkeypatch, "report", tmp_path)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    with pytest.raises(type(error)):
        run_cli(capsys, monkeypatch, "--debug", "report", tmp_path)
    return lines[0]


def test_unexpected_exception_is_one_line_with_a_debug_hint(capsys, monkeypatch, tmp_path):
    line = one_line_error(capsys, monkeypatch, tmp_path, ZeroDivisionError("division by zero"))
    assert line.startswith("raviso: error: ") and "ZeroDivisionError" in line
    assert "--debug" in line


def test_an_os_error_is_one_line_without_calling_itself_a_bug(capsys, monkeypatch, tmp_path):
    """An unreachable store (S3 endpoint down, a file system refusing) is the environment's
    answer, not a raviso bug: one line with the system's words and the --debug hint."""
    line = one_line_error(capsys, monkeypatch, tmp_path,
                          OSError("When reading 'x' in bucket 'b': Could not connect to server"))
    assert line.startswith("raviso: error: When reading 'x'") and "a bug" not in line
    assert "--debug" in line
