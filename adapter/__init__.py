"""her2-adapter: HL7 v2 / FHIR HER2 results to guideline-classified FHIR R4 DiagnosticReports."""

__version__ = "1.0.0"  # semantic versioning of the public contract: see CHANGELOG.md
