"""Count the instructions of a cold one-message ``convert``, part by part.

Run: ``.venv/bin/python bench/cold_start.py [FILE]`` (default: an IHC 3+ fixture). Each part is
imported in turn, in a fresh process under valgrind (``--tool=cachegrind --cache-sim=no``,
whose counts repeat to about 0.1 % whatever the machine's load), and its instructions are the
difference to the part before; the last row is the rest of a real ``her2-adapter convert``.
Run it twice: the first run may write bytecode and the mappings' cache, which a cold start
finds in place. Not a test: docs/performance.md "The cold start" reports the figures.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "hl7v2" / "ihc3-positive.hl7"

# (name, the statements that add it to the parts before)
PARTS = [
    ("Python itself", "pass"),
    ("import typer", "import typer"),
    ("adapter.cli (the commands' declarations)", "from adapter.cli import app"),
    ("typer building the commands", "import typer.main; typer.main.get_command(app)"),
    ("import pydantic", "import pydantic"),
    ("pydantic's first model (Settings)", "from adapter.config import Settings; Settings()"),
    ("adapter.model (the records)", "import adapter.model"),
    ("adapter.mapping (the mapping files' models)", "import adapter.mapping"),
    ("the rest of the pipeline (adapter.api)", "import adapter.api"),
    ("loading the mappings", "adapter.api.Converter(combine=True)"),
]
CONVERT = "import sys; sys.argv = ['her2-adapter', 'convert', sys.argv[1]]; {}; app()"


def instructions(code: str, file: Path) -> int:
    """The instructions valgrind counts for ``python -c code file``."""
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)  # a cold start with bytecode cached
    run = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            "-c",
            code,
            str(file),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
        cwd=ROOT.parent,  # not the checkout: the adapter is imported as installed
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
    if found is None:
        raise SystemExit(f"valgrind gave no count:\n{run.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    file = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else FIXTURE
    statements: list[str] = []
    before = 0
    print(f"{'part':<48} {'M instr.':>9} {'cumulative':>11}")
    for name, statement in PARTS:
        statements.append(statement)
        count = instructions("; ".join(statements), file)
        print(f"{name:<48} {(count - before) / 1e6:9.1f} {count / 1e6:11.1f}")
        before = count
    whole = instructions(CONVERT.format("from adapter.cli import app"), file)
    print(f"{'the rest of the run (arguments, one message)':<48} {(whole - before) / 1e6:9.1f}")
    print(f"{'her2-adapter convert, as it runs':<48} {whole / 1e6:9.1f}")


if __name__ == "__main__":
    main()
