"""The optional compiled build: mypyc compiles the modules of the message path to C extensions.

    .venv/bin/python tools/compiled.py build   # `make compiled`: build them in place
    .venv/bin/python tools/compiled.py check   # each listed module imports from its extension
    .venv/bin/python tools/compiled.py clean   # `make clean-compiled`: back to pure Python

The extensions are written beside their sources (adapter/model.cpython-311-...so beside
adapter/model.py; the library they share is adapter_compiled__mypyc...so beside adapter/), where
Python's import system takes an extension before a .py file of the same name: the editable
install of a checkout (`make`) runs them with nothing else to change. The .py files stay the one
implementation: the extensions are the same code in another form, and CI runs the output tests
against them (.ci/run). An extension built from older sources would stand in for the edited .py
file, so `make test` refuses to run while any is present (tests/conftest.py).

Needs a C compiler, the Python headers and mypy with setuptools (`.[dev]` has both). The modules
are those whose work is per message (docs/performance.md, "The optional compiled build");
modules that declare pydantic models are left out, since mypyc cannot compile pydantic's
generated classes, and so are the command line, the HTTP service and the store, which spend
their time in libraries.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import sys
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build" / "mypyc"  # mypyc's C sources and the compiler's objects
# The library the compiled modules share. At the top level: mypyc derives a compiled package's
# __path__ from the library's directory, so one inside the package gets it wrong.
GROUP = "adapter_compiled"

MODULES = (
    "adapter/model.py",
    "adapter/pipeline.py",
    "adapter/ingest/er7.py",
    "adapter/ingest/hl7v2.py",
    "adapter/ingest/obx.py",
    "adapter/ingest/assemble.py",
    "adapter/ingest/values.py",
    "adapter/ingest/grammar.py",
    "adapter/ingest/order.py",
    "adapter/ingest/report_text.py",
    "adapter/ingest/codecheck.py",
    "adapter/classify/__init__.py",
    "adapter/classify/docs.py",
    "adapter/classify/her2_breast.py",
    "adapter/classify/her2_common.py",
    "adapter/classify/her2_gastric.py",
    "adapter/classify/receptors.py",
    "adapter/classify/table.py",
    "adapter/classify/therapy.py",
    "adapter/classify/trace.py",
    "adapter/emit/__init__.py",
    "adapter/emit/ack.py",
    "adapter/emit/bundle.py",
    "adapter/emit/case_report.py",
    "adapter/emit/codes.py",
    "adapter/emit/datatypes.py",
    "adapter/emit/ids.py",
    "adapter/emit/parties.py",
    "adapter/emit/profiles.py",
    "adapter/emit/vocabulary.py",
    "adapter/emit/wording.py",
    "adapter/cases/book.py",
    "adapter/cases/combine.py",
    "adapter/cases/keys.py",
    "adapter/cases/log.py",
)


def module_names() -> list[str]:
    names = [path.removesuffix(".py").replace("/", ".") for path in MODULES]
    return [name.removesuffix(".__init__") for name in names]


def build() -> None:
    # Imported here: `check` and `clean` run without mypy or setuptools.
    from mypyc.build import mypycify
    from setuptools import setup

    clean()
    os.chdir(ROOT)  # mypy reads its options from pyproject.toml; the paths are relative to it
    extensions = mypycify(
        list(MODULES), opt_level="3", group_name=GROUP, target_dir=str(BUILD_DIR / "c")
    )
    temp = str(BUILD_DIR / "temp")
    setup(
        name="her2-adapter-compiled",
        packages=[],  # the extensions only: pyproject.toml's package is hatchling's to build
        py_modules=[],
        ext_modules=extensions,
        script_args=["--quiet", "build_ext", "--inplace", "--build-temp", temp],
    )


def _is_extension(path: str | None) -> bool:
    return path is not None and path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def extensions() -> list[Path]:
    """Every extension module in the package, whether or not this list built it, and the
    library they share."""
    found = [p for p in (ROOT / "adapter").rglob("*") if _is_extension(p.name)]
    found += [p for p in ROOT.glob(f"{GROUP}__mypyc.*") if _is_extension(p.name)]
    return sorted(found)


def clean() -> None:
    for path in extensions():
        path.unlink()
    shutil.rmtree(BUILD_DIR, ignore_errors=True)


def not_compiled() -> list[str]:
    """The listed modules that this interpreter would import from their .py file."""
    names = module_names()
    return [n for n in names if not _is_extension(getattr(find_spec(n), "origin", None))]


def imported_from_source() -> list[str]:
    """The listed modules that this process has imported from their .py file."""
    modules = [sys.modules[name] for name in module_names() if name in sys.modules]
    return [m.__name__ for m in modules if not _is_extension(getattr(m, "__file__", None))]


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "build":
        build()
        return 0
    if command == "clean":
        clean()
        return 0
    if command == "check":
        missing = not_compiled()
        for name in missing:
            print(f"not compiled: {name}", file=sys.stderr)
        if not missing:
            print(f"{len(module_names())} modules import from their extensions")
        return 1 if missing else 0
    print("usage: tools/compiled.py build|check|clean", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
