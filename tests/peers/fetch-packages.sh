#!/usr/bin/env bash
# FHIR implementation-guide packages the validator loads that npm cannot install as dependencies
# (their own dependencies, such as hl7.fhir.r4.core, are published on the FHIR package registry,
# not on npm). Each is fetched by `npm pack` at a pinned version, checked against the integrity
# npm published for it, and unpacked under packages/<name>/.
set -euo pipefail
cd "$(dirname "$0")"

fetch() {
  local name=$1 version=$2 integrity=$3
  local target="packages/$name"
  if [ -f "$target/package/package.json" ] && grep -q "\"version\": *\"$version\"" "$target/package/package.json"; then
    return
  fi
  local work
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent "$name@$version" >/dev/null)
  local tarball="$work/$name-$version.tgz"
  local actual
  actual=$(node -e 'const c=require("crypto"),f=require("fs");
    process.stdout.write("sha512-"+c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$tarball")
  if [ "$actual" != "$integrity" ]; then
    echo "integrity mismatch for $name@$version: $actual" >&2
    exit 1
  fi
  rm -rf "$target" && mkdir -p "$target"
  tar xzf "$tarball" -C "$target"
  rm -rf "$work"
}

fetch hl7.fhir.us.mcode 4.0.0 \
  'sha512-HJogFi9rQetIUE8gqKFq2tt4I8ukdH3PUCQO5jBiKxYUgh+vrlXvkWkt/XuYOzpNPdfRmsj3LG4UJm5o1g2OlA=='
