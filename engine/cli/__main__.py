"""`python -m engine.cli`: the same as the `whetstone-engine` command."""

from engine.cli.main import run_as_program

run_as_program()
