"""``python -m cfpair`` runs the CLI."""

from cfpair.cli import app

app(prog_name="cfpair")
