"""Shared by the HTTP API and forwarding tests: a Runtime over a SQLite store, HL7 built inline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from adapter.config import Settings
from adapter.mapping import Mappings, load_mappings
from adapter.pipeline import Context
from adapter.service.handler import Service
from adapter.service.http import create_app
from adapter.service.server import Runtime
from adapter.store import GroupCommitter, open_store

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


@cache
def shipped_mappings(directory: Path) -> Mappings:
    return load_mappings(directory)


def build_runtime(tmp_path: Path, *, forward: bool = False, **settings: Any) -> Runtime:
    """A Runtime on a fresh SQLite file; ``settings`` override Settings fields."""
    service_settings = Settings(store=f"sqlite:///{tmp_path / 'store.db'}", **settings)
    store = open_store(service_settings.store)
    committer = GroupCommitter(store)
    context = Context(service_settings, shipped_mappings(service_settings.mappings_dir))
    service = Service(context, committer, lambda: T0, forward=forward)
    return Runtime(service_settings, store, committer, service, lambda: T0)


@asynccontextmanager
async def serving(
    runtime: Runtime, *, raise_errors: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on ``create_app(runtime)`` in this event loop, with the committer running.

    ``raise_errors=False`` lets the app's own 500 handler answer instead of raising in the test.
    """
    transport = httpx.ASGITransport(create_app(runtime), raise_app_exceptions=raise_errors)
    async with (
        runtime.committer,
        httpx.AsyncClient(transport=transport, base_url="http://adapter.test") as client,
    ):
        yield client
    runtime.store.close()


def oru(
    control_id: str,
    *,
    ihc: str = "3+^Positive (3+)^L",
    loinc: str = "85319-2^HER2 [Presence] in Breast cancer specimen by Immune stain^LN",
    mrn: str = "TST000101",
    sender: str = "COPATH|GOODHEALTH PATHOLOGY",
) -> bytes:
    """A one-result ORU^R01 (v2.5.1) from a breast core biopsy, segments ending in CR."""
    segments = [
        f"MSH|^~\\&|{sender}|HER2-ADAPTER|ONCOLOGY|20240305162001-0500||ORU^R01^ORU_R01|"
        f"{control_id}|P|2.5.1|||AL|NE",
        f"PID|1||{mrn}^^^GOODHEALTH^MR||TEST^PATIENT^ALPHA||19500101|F",
        "ORC|RE|PLC1001^EHR|SP24-01001^COPATH||CM",
        "OBR|1|PLC1001^EHR|SP24-01001^COPATH|HER2IHC^HER2 immunohistochemistry^L|||"
        "20240302093001-0500|||||||||1234567893^TESTDOC^ORDERING^^^^^^NPI||||||"
        "20240305161501-0500||SP|F",
        f"OBX|1|CWE|{loinc}|1|{ihc}|||POS|||F|||20240302093001-0500",
        "SPM|1|^SP24-01001-A1&COPATH||TISS^Tissue^HL70487|||CNB^Core needle biopsy^L|"
        "80248007^Left breast structure^SCT||||||||||20240302093001-0500",
    ]
    return ("\r".join(segments) + "\r").encode()


GLUCOSE = "2345-7^Glucose^LN"
"""An OBX-3 the adapter does not classify: a message with only this is NO-HER2-RESULT."""

HL7 = {"Content-Type": "x-application/hl7-v2+er7"}
FHIR = {"Content-Type": "application/fhir+json"}


def observation(
    obs_id: str = "her2-ihc-1", patient: str = "p1", value: str = "Positive (3+)"
) -> dict[str, Any]:
    """A FHIR R4 HER2 IHC Observation (LOINC 85319-2) with its score as text."""
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "85319-2",
                    "display": "HER2 [Presence] in Breast cancer specimen by Immune stain",
                }
            ]
        },
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2024-03-05T10:15:00+01:00",
        "valueCodeableConcept": {"text": value},
    }
