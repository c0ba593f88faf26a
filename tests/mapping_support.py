"""The shipped mappings with the example lab active, as the tests of sender files need them.

``mappings/examples/`` is not active anywhere (not in a checkout, not in a wheel); these tests
exercise sender files through the example lab, so they run on a copy of the shipped defaults
with ``examples/senders/*.toml`` placed in ``senders/``. The copy is made once per test run.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

from adapter.config import Settings, default_mappings_dir
from adapter.mapping import Mappings, load_mappings

EXAMPLES = Path(__file__).resolve().parent.parent / "mappings" / "examples"


@cache
def example_mappings_dir() -> Path:
    target = Path(tempfile.mkdtemp(prefix="her2-example-mappings-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    for path in default_mappings_dir().glob("*.toml"):
        shutil.copy(path, target / path.name)
    shutil.copytree(default_mappings_dir() / "languages", target / "languages")
    shutil.copytree(EXAMPLES / "senders", target / "senders")
    return target


def example_mappings() -> Mappings:
    return load_mappings(example_mappings_dir())


def example_settings() -> Settings:
    return Settings(mappings_dir=example_mappings_dir())
