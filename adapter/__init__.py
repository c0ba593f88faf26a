"""her2-adapter: HL7 v2 / FHIR HER2 results to guideline-classified FHIR R4 DiagnosticReports."""

__version__ = "0.1.0"
