/**
 * dependency-cruiser rules for Switchboard: STYLE.md "Layering rules" (HARD rule 1), row by row.
 *
 * Each `layer-*` rule says: a file of that layer may not import a file under src/ or web/ outside
 * the layers its table row lists. `tsPreCompilationDeps: true` makes `import type` / `export type`
 * edges count too (STYLE.md: "The same direction applies to `import type`").
 *
 * Unit tests (`*.test.ts`, beside the file they test) obey the same layer rules; they may in
 * addition import helpers under test/, and (in base/sip/sdp) node: modules and devDependencies
 * such as node:test and fast-check. Nothing else in src/ may import test/; nothing imports bench/.
 */

const TEST = '\\.test\\.ts$';

// The layer table's paths, bottom to top.
const BASE = '^src/base/';
const SIP = '^src/sip/';
const SDP = '^src/sdp/';
const TRANSPORT = '^src/transport/';
const TRANSPORT_INTERFACE = '^src/transport/transport\\.ts$';
const TRANSACTION = '^src/transaction/';
const AUTH = '^src/auth/';
const DIALOG = '^src/dialog/';
const STACK = '^src/stack/';
const STORE_INTERFACES = '^src/store/[^/]+$'; // files directly in src/store/
const STORE_ADAPTER = '^src/store/([^/]+)/'; // src/store/sqlite/, src/store/redis/ (and any other)
const SERVICES = '^src/services/';
const ADMIN = '^src/admin/';
const CLI = '^src/cli/';
const WEB = '^web/';

// Anything a layer could import from the project's own code.
const PROJECT = '^(src|web)/';
const KNOWN_LAYER =
  '^src/(base|sip|sdp|transport|transaction|auth|dialog|stack|store|services|admin|cli)/';

// "through each layer's index.ts" (services row).
const LIBRARY_INDEX = '^src/(base|sip|sdp|transport|transaction|auth|dialog|stack)/index\\.ts$';
const STACK_ENTRY = '^src/stack/create-stack\\.ts$'; // STYLE.md: "the library's ... public entry"
// "services public API" (admin row): files directly in src/services/ and each service's index.ts.
const SERVICES_PUBLIC = ['^src/services/[^/]+$', '^src/services/[^/]+/index\\.ts$'];

const BELOW_STACK = [BASE, SIP, SDP, TRANSPORT, TRANSACTION, AUTH, DIALOG];

/** A layer row: `from` may import only `allowed` among the project's own files. */
function layer(name, from, allowed, comment) {
  return {
    name: `layer-${name}`,
    severity: 'error',
    comment: `STYLE.md layer table: ${comment}`,
    from: { path: from },
    to: { path: PROJECT, pathNot: allowed },
  };
}

const NPM = [
  'npm',
  'npm-dev',
  'npm-optional',
  'npm-peer',
  'npm-bundled',
  'npm-no-pkg',
  'npm-unknown',
];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    // ---- the layer table, one rule per row ----------------------------------------------------
    layer('base', BASE, [BASE], '`base` may import nothing.'),
    layer('sip', SIP, [SIP, BASE], '`sip` may import only `base` (and is independent of `sdp`).'),
    layer('sdp', SDP, [SDP, BASE], '`sdp` may import only `base` (and is independent of `sip`).'),
    layer('transport', TRANSPORT, [TRANSPORT, SIP, BASE], '`transport` may import `sip`, `base`.'),
    layer(
      'transaction',
      TRANSACTION,
      [TRANSACTION, TRANSPORT_INTERFACE, SIP, BASE],
      '`transaction` may import the `transport` interface (src/transport/transport.ts only), `sip`, `base`.',
    ),
    layer('auth', AUTH, [AUTH, SIP, BASE], '`auth` may import `sip`, `base`.'),
    layer(
      'dialog',
      DIALOG,
      [DIALOG, TRANSACTION, AUTH, SDP, SIP, BASE],
      '`dialog` may import `transaction`, `auth`, `sdp`, `sip`, `base`.',
    ),
    layer(
      'stack',
      STACK,
      [STACK, ...BELOW_STACK],
      '`stack` may import everything above it in the table (base .. dialog), not store/services/admin/cli.',
    ),
    layer(
      'store-interfaces',
      STORE_INTERFACES,
      [STORE_INTERFACES, SIP, BASE],
      '`store` interfaces may import `sip`, `base` (types only, see store-interfaces-types-only).',
    ),
    {
      name: 'store-interfaces-types-only',
      severity: 'error',
      comment:
        'STYLE.md layer table: `store` interfaces import `sip` and `base` for types only (use `import type`).',
      from: { path: STORE_INTERFACES, pathNot: TEST },
      to: { path: [SIP, BASE], dependencyTypesNot: ['type-only'] },
    },
    layer(
      'store-adapters',
      STORE_ADAPTER,
      [STORE_INTERFACES, '^src/store/$1/'],
      '`store/sqlite`, `store/redis` may import only the `store` interfaces (and their own folder).',
    ),
    layer(
      'services',
      SERVICES,
      [SERVICES, LIBRARY_INDEX, STACK_ENTRY, STORE_INTERFACES],
      "`services/*` may import `stack` and the layers below it through each layer's index.ts, and `store` interfaces; never adapters.",
    ),
    {
      name: 'services-no-internals-of-other-services',
      severity: 'error',
      comment:
        "STYLE.md layer table: a service never imports another service's internals (only its index.ts).",
      from: { path: '^src/services/([^/]+)/' },
      to: { path: SERVICES, pathNot: ['^src/services/$1/', ...SERVICES_PUBLIC] },
    },
    {
      name: 'services-contacts-through-store',
      severity: 'error',
      comment:
        'STYLE.md: the proxy (and presence, messaging, every other service) finds contacts through store/location.ts, not through services/registrar.',
      from: { path: SERVICES, pathNot: '^src/services/registrar/' },
      to: { path: '^src/services/registrar/' },
    },
    {
      name: 'services-routing-is-pure',
      severity: 'error',
      comment:
        'STYLE.md: routing/ is pure decision logic consumed by the proxy, never the other way round: it imports no other service.',
      from: { path: '^src/services/routing/' },
      to: { path: SERVICES, pathNot: '^src/services/routing/' },
    },
    layer(
      'admin',
      ADMIN,
      [ADMIN, ...SERVICES_PUBLIC, STORE_INTERFACES, STACK, ...BELOW_STACK],
      '`admin` may import the `services` public API, `store` interfaces and the layers below (stack .. base); never adapters or cli.',
    ),
    layer(
      'cli',
      CLI,
      ['^src/'],
      '`cli` may import everything under src/ (it instantiates adapters and services); web/ is a browser bundle, never imported.',
    ),
    layer(
      'web',
      WEB,
      [WEB, '^src/(base|sip|sdp)/'],
      '`web/` may import `base`, `sip`, `sdp` only.',
    ),

    // ---- HARD rule 2: the shared core has zero runtime dependencies and no node: imports -------
    {
      name: 'core-no-node-builtins',
      severity: 'error',
      comment:
        'STYLE.md HARD rule 2: src/base, src/sip, src/sdp import no node: (or bare core) modules; web/ reuses them.',
      from: { path: '^src/(base|sip|sdp)/', pathNot: TEST },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'core-no-packages',
      severity: 'error',
      comment:
        'STYLE.md HARD rule 2: src/base, src/sip, src/sdp have zero dependencies (nothing from node_modules, not even types).',
      from: { path: '^src/(base|sip|sdp)/', pathNot: TEST },
      to: { dependencyTypes: NPM },
    },
    {
      name: 'core-no-node-modules-path',
      severity: 'error',
      comment: 'STYLE.md HARD rule 2 (catch-all for anything resolved into node_modules).',
      from: { path: '^src/(base|sip|sdp)/', pathNot: TEST },
      to: { path: 'node_modules' },
    },

    // ---- general hygiene ------------------------------------------------------------------------
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'STYLE.md HARD rule 1: no cycles, not even between files inside one layer.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-in-a-layer',
      severity: 'error',
      comment:
        'Every file under src/ belongs to one layer of the STYLE.md table (src/<layer>/...); add a layer there first.',
      from: { path: '^src/', pathNot: KNOWN_LAYER },
      to: {},
    },
    {
      name: 'not-to-file-outside-layers',
      severity: 'error',
      comment: 'Importing a src/ file that belongs to no layer of the STYLE.md table.',
      from: {},
      to: { path: '^src/', pathNot: KNOWN_LAYER },
    },
    {
      name: 'src-not-to-test',
      severity: 'error',
      comment: 'Only unit tests (*.test.ts) may import test helpers under test/.',
      from: { path: '^src/', pathNot: TEST },
      to: { path: '^test/' },
    },
    {
      name: 'src-not-to-bench',
      severity: 'error',
      comment: 'bench/ has its own dependencies; src/ never imports it.',
      from: { path: '^src/' },
      to: { path: '^bench/' },
    },
    {
      name: 'not-to-dev-dep',
      severity: 'error',
      comment:
        'Runtime code under src/ may not use devDependencies (fast-check, typescript, ...); tests may.',
      from: { path: '^src/', pathNot: TEST },
      to: { dependencyTypes: ['npm-dev'] },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment:
        'Import that cannot be resolved (typo, missing .ts extension, or package not installed).',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-non-package-json',
      severity: 'error',
      comment: 'A package used but not declared in package.json.',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|coverage|data)/' },
    // Count `import type` / `export type` edges too (HARD rule 1 applies to type-only imports).
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
      extensions: ['.ts', '.d.ts', '.js', '.mjs', '.cjs', '.json'],
    },
    skipAnalysisNotInRules: true,
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
