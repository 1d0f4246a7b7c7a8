#!/usr/bin/env node
// STYLE.md guideline 7: docs/errors.md lists every error code. Collects every SB_ERR_* code
// mentioned in src/base/errors.ts (thrown-error catalogue) and in src/sip/**/errors.ts (wire
// error codes), then fails listing the codes docs/errors.md does not mention.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const CATALOGUE = 'src/base/errors.ts';
const WIRE_ROOTS = ['src/sip']; // every errors.ts below these folders
const DOC = 'docs/errors.md';
const CODE = /\bSB_ERR_[A-Z0-9_]+/g;

const rel = (path) => relative(root, path).split(sep).join('/');

function findErrorFiles(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== 'node_modules') findErrorFiles(path, out);
    else if (entry.isFile() && entry.name === 'errors.ts') out.push(path);
  }
  return out;
}

const cataloguePath = join(root, CATALOGUE);
if (!existsSync(cataloguePath)) {
  console.log(`check-errors-doc: ${CATALOGUE} does not exist yet; nothing to check.`);
  process.exit(0);
}

// Transport failures are a union type in the transport contract.
const EXTRA = ['src/transport/transport.ts'].map((f) => join(root, f)).filter((f) => existsSync(f));
const sources = [
  cataloguePath,
  ...WIRE_ROOTS.flatMap((dir) => findErrorFiles(join(root, dir))),
  ...EXTRA,
];
/** code -> files that mention it */
const codes = new Map();
for (const file of sources.sort()) {
  for (const [code] of readFileSync(file, 'utf8').matchAll(CODE)) {
    if (!codes.has(code)) codes.set(code, new Set());
    codes.get(code).add(rel(file));
  }
}

const docPath = join(root, DOC);
const doc = existsSync(docPath) ? readFileSync(docPath, 'utf8') : '';
// Whole-code match: SB_ERR_PARSE must not count as documented because SB_ERR_PARSE_CSEQ is.
const documented = new Set(doc.match(CODE) ?? []);
const missing = [...codes.keys()].filter((code) => !documented.has(code)).sort();

if (missing.length > 0) {
  console.error(
    existsSync(docPath)
      ? `check-errors-doc: ${DOC} does not mention ${missing.length} error code(s):`
      : `check-errors-doc: ${DOC} does not exist; it must list these ${missing.length} error code(s):`,
  );
  for (const code of missing) console.error(`  ${code}  (${[...codes.get(code)].join(', ')})`);
  process.exit(1);
}

console.log(
  `check-errors-doc: all ${codes.size} error code(s) from ${sources.map(rel).join(', ')} are in ${DOC}.`,
);
