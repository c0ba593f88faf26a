"""One exception tree for the adapter, each error with a stable code.

The code travels unchanged into HL7 ACK ERR segments, FHIR OperationOutcome issues, CLI stderr
lines, the store and the logs, so that an interface analyst can look any of them up in
``docs/errors.md``::

    AdapterError                  (base; never raised itself)
    ├── InputError                permanent: the content is wrong, resending will not help
    │   ├── MalformedMessage      HL7-MALFORMED     unreadable HL7 v2 (no MSH, bad separators)
    │   ├── UnsupportedMessage    HL7-UNSUPPORTED   HL7 v2 of a type/version we do not take
    │   ├── EncodingError         ENCODING          not decodable in the declared charset
    │   ├── MessageTooLarge       TOO-LARGE         over the configured size limit
    │   ├── InvalidJson           FHIR-JSON         broken JSON
    │   ├── NotFhir               FHIR-NOT-FHIR     JSON that is not a FHIR resource
    │   ├── UnsupportedResource   FHIR-UNSUPPORTED  a resourceType we do not take
    │   ├── InvalidResource       FHIR-INVALID      a resource that violates FHIR R4
    │   ├── NothingToClassify     NO-HER2-RESULT    no HER2/ER/PgR tissue result in it
    │   └── ValueNotUnderstood    VALUE-NOT-UNDERSTOOD  a result value the mappings cannot read
    ├── ConfigError               the adapter's own configuration is wrong
    │   └── MappingFileError      MAPPING-INVALID   a mappings/*.toml file failed validation
    ├── OutputInvalid             OUTPUT-INVALID    an emitted Bundle failed validation (a bug)
    └── TransientError            retry later: no ACK is sent, HTTP answers 503
        └── StoreUnavailable      STORE-UNAVAILABLE the message could not be stored durably

``hl7_condition`` is the HL7 table 0357 code for ERR-3; ``ack_code`` is AE or AR for MSA-1;
``http_status`` is the HTTP status the API answers with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from adapter.model import UnusedResult


class AdapterError(Exception):
    code: ClassVar[str] = "INTERNAL"
    hl7_condition: ClassVar[str] = "207"  # application internal error
    ack_code: ClassVar[str] = "AE"
    http_status: ClassVar[int] = 500

    def __init__(self, reason: str, *, location: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.location = location  # e.g. "OBX[4].5" or "Observation.valueQuantity"

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"{self.code}: {self.reason}{where}"


class InputError(AdapterError):
    code = "INPUT"
    ack_code = "AE"
    http_status = 422


class MalformedMessage(InputError):
    code = "HL7-MALFORMED"
    hl7_condition = "100"  # segment sequence error
    ack_code = "AR"
    http_status = 400


class UnsupportedMessage(InputError):
    code = "HL7-UNSUPPORTED"
    hl7_condition = "200"  # unsupported message type
    ack_code = "AR"
    http_status = 422


class EncodingError(InputError):
    code = "ENCODING"
    hl7_condition = "102"  # data type error
    ack_code = "AR"
    http_status = 400


class MessageTooLarge(InputError):
    code = "TOO-LARGE"
    hl7_condition = "207"
    ack_code = "AR"
    http_status = 413


class InvalidJson(InputError):
    code = "FHIR-JSON"
    http_status = 400


class NotFhir(InputError):
    code = "FHIR-NOT-FHIR"
    http_status = 400


class UnsupportedResource(InputError):
    code = "FHIR-UNSUPPORTED"
    http_status = 422


class InvalidResource(InputError):
    code = "FHIR-INVALID"
    http_status = 422


class NothingToClassify(InputError):
    code = "NO-HER2-RESULT"
    hl7_condition = "101"  # required field missing: no usable result
    ack_code = "AE"
    http_status = 422

    def __init__(
        self, reason: str, *, location: str | None = None, unused: tuple[UnusedResult, ...] = ()
    ) -> None:
        super().__init__(reason, location=location)
        # What was read and not used, for onboarding (``mappings suggest``); never reported.
        self.unused = unused


class ValueNotUnderstood(InputError):
    """A HER2, ER or PgR result whose value the mappings could not read.

    The message is still converted (the report says the result was not understood, and where),
    so this error travels beside a Bundle: the engine gets AE naming the position, and the
    message is stored as rejected, for ``reprocess`` once the mapping reads the value.
    """

    code = "VALUE-NOT-UNDERSTOOD"
    hl7_condition = "103"  # table value not found
    ack_code = "AE"
    http_status = 422


class ConfigError(AdapterError):
    code = "CONFIG"


class MappingFileError(ConfigError):
    code = "MAPPING-INVALID"
    http_status = 422  # a reload over HTTP that found a bad file (the old mappings stay)

    def __init__(self, reason: str, *, file: str, key: str | None = None) -> None:
        super().__init__(reason, location=f"{file}:{key}" if key else file)
        self.file = file
        self.key = key


class OutputInvalid(AdapterError):
    code = "OUTPUT-INVALID"


class TransientError(AdapterError):
    code = "TRANSIENT"
    http_status = 503


class StoreUnavailable(TransientError):
    code = "STORE-UNAVAILABLE"


def all_error_classes() -> list[type[AdapterError]]:
    """Every concrete error class, for docs and for the test that codes are unique."""
    found: list[type[AdapterError]] = []
    pending: list[type[AdapterError]] = [AdapterError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found
