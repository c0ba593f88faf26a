"""Output: the FHIR transaction Bundle for a message and the HL7 v2 ACK that answers it.

``case_report.build_bundle`` and ``bundle.dumps`` are the hot path (plain dicts, orjson);
``ack`` builds the ACKs; ``validate.validate_bundle`` checks a Bundle with fhir.resources and is
imported lazily because that library is slow to load. The package itself imports none of them:
``convert`` writes no ACK, and loading ``ack`` cost its start 18 M instructions
(docs/performance.md, "The cold start").
"""
