"""Coverage-guided fuzzing of the two entry points with atheris (libFuzzer), bounded in time.

    python tests/fuzz/run.py hl7v2 SECONDS     (or fhir)

Starts from ``fixtures/<kind>/`` and the committed corpus ``tests/fuzz/corpus/<kind>/`` (inputs
that earlier runs found new coverage with, minimised) and checks the invariant of
``invariant.py`` on every input. A finding stops the run with libFuzzer's exit code (77) and is
written to ``tests/fuzz/findings/<kind>-crash-<sha1>`` (its Base64 is printed too, for a run in
CI: ``base64 -d`` it into that folder): keep the file, fix the cause, and
``tests/test_fuzz_findings.py`` replays it from then on.

New coverage goes to a scratch directory, named at the start: copy its files into the corpus to
keep them (the corpus here came from two-minute runs of each). libFuzzer's own arguments may
follow the kind instead of the seconds.
"""

from __future__ import annotations

import base64
import os
import sys
import tempfile
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parents[1] / "fixtures"

with atheris.instrument_imports(include=["adapter"]):
    from invariant import check  # type: ignore[import-not-found]

    import adapter.ingest.fhir  # noqa: F401 - imported lazily by the pipeline: instrument it too


def main() -> None:
    kind, given = sys.argv[1], sys.argv[2:]
    options = [
        "-max_len=16384",
        "-timeout=20",
        "-rss_limit_mb=4096",
        f"-artifact_prefix={HERE / 'findings'}/{kind}-",
    ]
    if len(given) == 1 and given[0].isdigit():
        scratch = tempfile.mkdtemp(prefix=f"her2-fuzz-{kind}-")
        print(f"new coverage goes to {scratch}", file=sys.stderr)
        # CI sets a seed and a number of runs to bound its run; the run still differs between
        # machines (coverage depends on memory layout and timing), so a CI finding is replayed
        # from its Base64, not found again by re-running here.
        reproducible = [
            f"-{flag}={os.environ[variable]}"
            for flag, variable in (("seed", "HER2_FUZZ_SEED"), ("runs", "HER2_FUZZ_RUNS"))
            if os.environ.get(variable)
        ]
        given = [
            *reproducible,
            f"-max_total_time={given[0]}",
            scratch,
            str(HERE / "corpus" / kind),
            str(FIXTURES / kind),
        ]
    atheris.Setup([sys.argv[0], *options, *given], lambda data: _checked(data, kind))
    atheris.Fuzz()


def _checked(data: bytes, kind: str) -> None:
    try:
        check(data, kind)
    except BaseException:
        # libFuzzer prints the Base64 of small inputs only; CI's log must carry every finding
        print(f"finding ({kind}) as Base64: {base64.b64encode(data).decode()}", file=sys.stderr)
        raise


if __name__ == "__main__":
    main()
