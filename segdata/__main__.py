"""``python -m segdata`` runs the command-line tool."""

from segdata.cli import run

run()
