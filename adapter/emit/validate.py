"""Validate an emitted Bundle against FHIR R4 (R4B models, wire-compatible for our resources).

Slow (fhir.resources builds the whole model tree): meant for tests, the CLI's ``--validate`` and
sampling in production, never for every message on the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapter.errors import OutputInvalid


def validate_bundle(bundle: dict[str, Any]) -> None:
    """Raise :class:`OutputInvalid` with the first failing element path, e.g.
    ``Bundle.entry[3].resource.valueQuantity.value``."""
    from fhir.resources.R4B.bundle import Bundle  # slow import, only when validating
    from pydantic import ValidationError

    try:
        Bundle.model_validate(bundle)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        # the message only: pydantic's full text would repeat the input (patient data)
        raise OutputInvalid(first["msg"], location=element_path(first["loc"])) from exc
    except (TypeError, ValueError) as exc:
        raise OutputInvalid(f"{type(exc).__name__} in FHIR model", location="Bundle") from exc


def element_path(loc: Sequence[int | str]) -> str:
    """pydantic's ``('entry', 3, 'resource', 'status')`` -> ``Bundle.entry[3].resource.status``."""
    path = "Bundle"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path
