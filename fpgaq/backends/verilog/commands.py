"""Command-line subcommands of the Verilog back-end (`fpgaq rtlsim`, `fpgaq synth`)."""
from __future__ import annotations


def add_commands(sub) -> None:
    """Register the RTL subcommands on the CLI's subparsers."""
