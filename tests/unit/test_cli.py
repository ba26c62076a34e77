"""The ``streamrec`` command line (no process is started: help texts and argument checks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from streams.cli import _settings, main

COMMANDS = ("broker", "worker", "produce", "demo", "bench", "eval", "forget", "soak")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("STREAMREC_"):
            monkeypatch.delenv(name)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:", 1)[1]
    for command in COMMANDS:
        assert f"  {command} " in listed
    assert "STREAMREC_" in result.output


def test_short_help_option(runner: CliRunner) -> None:
    result = runner.invoke(main, ["-h"])
    assert result.exit_code == 0
    assert "Commands:" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help(runner: CliRunner, command: str) -> None:
    result = runner.invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: main {command} [OPTIONS]" in result.output


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("broker", ["--port", "--partitions"]),
        ("worker", ["--broker"]),
        ("produce", ["--broker", "--dataset", "--items", "--events", "--rate", "--limit"]),
        ("demo", ["--users", "--events-per-user"]),
        ("bench", ["--dataset", "--events", "--output"]),
        ("soak", ["--dataset", "--minutes", "--rate", "--warmup", "--output"]),
    ],
)
def test_subcommand_options_are_documented(
    runner: CliRunner, command: str, options: list[str]
) -> None:
    output = runner.invoke(main, [command, "--help"]).output
    for option in options:
        assert option in output


def test_unknown_command_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["nope"])
    assert result.exit_code == 2
    assert "No such command 'nope'" in result.output


def test_produce_without_inputs_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["produce"])
    assert result.exit_code == 2
    assert "give --dataset, or --items and/or --events" in result.output


def test_produce_with_missing_file_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["produce", "--items", str(tmp_path / "absent.jsonl")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_forget_needs_a_user_id_that_is_not_blank(runner: CliRunner) -> None:
    assert "Missing argument 'USER_ID'" in runner.invoke(main, ["forget"]).output
    result = runner.invoke(main, ["forget", "  "])
    assert result.exit_code == 2 and "a user id cannot be blank" in result.output


def test_soak_refuses_a_warm_up_as_long_as_the_run(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        main, ["soak", "--dataset", str(tmp_path), "--minutes", "3", "--warmup", "3"]
    )
    assert result.exit_code == 2 and "must be shorter than the run" in result.output


def test_command_line_kafka_options_win_and_are_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMREC_KAFKA__BROKER", "env-host:1")
    monkeypatch.setenv("STREAMREC_KAFKA__PARTITIONS", "6")
    assert _settings().kafka.broker == "kafka://env-host:1"
    settings = _settings(broker="cli-host:2", partitions=None)
    assert settings.kafka.broker == "kafka://cli-host:2"
    assert settings.kafka.partitions == 6  # None means "not given"
    with pytest.raises(click.BadParameter, match="partitions"):
        _settings(partitions=0)


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "streamrec"
    done = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: streamrec")


def test_tooling_is_imported_only_by_the_command_that_runs() -> None:
    """``streams.cli`` imports no tooling module (nor matplotlib) until a command runs."""
    code = (
        "import sys, streams.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tooling', 'matplotlib')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("args", "rate"), [([], "PACED_RATE"), (["--rate", "400"], 400.0)])
def test_bench_paces_at_the_bench_s_own_rate_unless_told(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, args: list[str], rate: object
) -> None:
    import tooling.bench

    asked: list[float] = []

    def run_bench(*given: object) -> int:
        asked.append(float(given[-1]))  # type: ignore[arg-type]
        return 0

    monkeypatch.setattr(tooling.bench, "run_bench", run_bench)
    result = runner.invoke(main, ["bench", *args])
    assert result.exit_code == 0, result.output
    expected = tooling.bench.PACED_RATE if rate == "PACED_RATE" else rate
    assert asked == [expected]
    assert runner.invoke(main, ["bench", "--rate", "0"]).exit_code == 2
