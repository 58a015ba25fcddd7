"""The deployment files speak the CLI's language: every flag they pass, `gatehouse` knows."""

from __future__ import annotations

import shlex
from pathlib import Path

from gateway.cli import parser

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_the_systemd_unit_runs_a_command_the_cli_accepts() -> None:
    unit = (DEPLOY / "gatehouse.service").read_text()
    [exec_start] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert Path(argv[0]).name == "gatehouse"
    args = parser().parse_args(argv[1:])
    assert args.command == "run"
    assert args.admin[0] == "127.0.0.1"  # the admin API is never exposed beyond the host
    assert str(args.state) in unit  # the state directory is the one the unit may write
