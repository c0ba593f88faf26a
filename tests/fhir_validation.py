"""Two independent FHIR R4 oracles for emitted Bundles: the official JSON schema and fhir.resources.

They catch different mistakes: the schema checks code values against their required value sets
(``status``, ``comparator``) and forbids empty strings, which fhir.resources lets through;
fhir.resources checks primitive formats and the element model.

Speed: the schema's ``ResourceList`` is a ``oneOf`` over all 146 resource types, which jsonschema
checks exhaustively for every entry. The schema also declares a ``discriminator`` (resourceType ->
definition); every resource definition requires ``resourceType`` with a ``const``, so exactly one
branch of the ``oneOf`` can ever match. We therefore replace the ``oneOf`` by a dispatch on that
discriminator: the same verdict, without trying the other 145 definitions.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from fhir.resources.R4B.bundle import Bundle
from jsonschema import Draft6Validator
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

SCHEMA_PATH = Path(__file__).parent / "data" / "fhir.schema.json.gz"
_DISPATCH = "x-resourceType-dispatch"


def assert_valid_r4(bundle: Mapping[str, Any] | bytes) -> None:
    """Fail with every schema error, or the first model error, of a resource or its JSON bytes."""
    document = json.loads(bundle, parse_float=Decimal) if isinstance(bundle, bytes) else bundle
    errors = sorted(schema_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        listed = "\n".join(f"  {e.json_path}: {e.message[:200]}" for e in errors[:20])
        raise AssertionError(f"FHIR R4 JSON schema: {len(errors)} error(s)\n{listed}")
    if document.get("resourceType") == "Bundle":
        Bundle.model_validate(document)


def _dispatch(
    validator: Validator, mapping: Mapping[str, str], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        yield ValidationError("a resource must be a JSON object")
        return
    resource_type = instance.get("resourceType")
    target = mapping.get(resource_type) if isinstance(resource_type, str) else None
    if target is None:
        yield ValidationError(f"unknown resourceType {resource_type!r}")
        return
    yield from validator.descend(instance, {"$ref": target})


@cache
def schema_validator() -> Validator:
    """The compiled validator for the vendored schema (Draft 6, as the schema declares)."""
    with gzip.open(SCHEMA_PATH, "rt", encoding="utf-8") as handle:
        schema = json.load(handle)
    if schema["$schema"] != "http://json-schema.org/draft-06/schema#":
        raise AssertionError(f"unexpected schema dialect {schema['$schema']}")
    mapping = schema["discriminator"]["mapping"]
    _check_dispatch_is_exact(schema, mapping)
    dispatch = {_DISPATCH: mapping}
    schema["definitions"]["ResourceList"] = dispatch
    del schema["oneOf"]
    schema.update(dispatch)
    validator_class = jsonschema.validators.extend(Draft6Validator, {_DISPATCH: _dispatch})
    return validator_class(schema)


def _check_dispatch_is_exact(schema: dict[str, Any], mapping: dict[str, str]) -> None:
    """The dispatch equals the oneOf only if both list the same definitions, each pinned by a
    required ``resourceType`` const equal to its discriminator key."""
    branches = {branch["$ref"] for branch in schema["oneOf"]}
    resource_list = {branch["$ref"] for branch in schema["definitions"]["ResourceList"]["oneOf"]}
    if not branches == resource_list == set(mapping.values()):
        raise AssertionError("discriminator, root oneOf and ResourceList list different types")
    for resource_type, ref in mapping.items():
        definition = schema["definitions"][ref.removeprefix("#/definitions/")]
        pinned = definition["properties"]["resourceType"].get("const")
        if pinned != resource_type or "resourceType" not in definition.get("required", []):
            raise AssertionError(f"{ref} is not pinned to resourceType {resource_type}")
