"""``python -m adapter``: the same command line as ``her2-adapter``."""

from adapter.cli import app

app(prog_name="her2-adapter")
