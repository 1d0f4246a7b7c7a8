// ESLint flat config. The rules below STYLE.md "Enforcement" asks for are marked with their
// reason; the layer table itself is enforced by dependency-cruiser (.dependency-cruiser.cjs).
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

const TS = ['**/*.ts', '**/*.mts', '**/*.cts'];
const TESTS = ['**/*.test.ts', 'test/**', 'bench/**'];

// Node.js globals for plain JS files (scripts/*.mjs, config files). TypeScript files get them
// from @types/node instead (typescript-eslint turns no-undef off for TS).
const nodeGlobals = {
  process: 'readonly',
  console: 'readonly',
  Buffer: 'readonly',
  URL: 'readonly',
  URLSearchParams: 'readonly',
  TextDecoder: 'readonly',
  TextEncoder: 'readonly',
  AbortController: 'readonly',
  structuredClone: 'readonly',
  queueMicrotask: 'readonly',
  setTimeout: 'readonly',
  clearTimeout: 'readonly',
  setInterval: 'readonly',
  clearInterval: 'readonly',
  setImmediate: 'readonly',
  clearImmediate: 'readonly',
};

const timerMessage =
  'Use the injected Clock (src/base/clock.ts) so Timers A-K run on a manual clock in tests (STYLE.md rule 3).';
const timers = ['setTimeout', 'setInterval', 'clearTimeout', 'clearInterval'];

export default defineConfig([
  globalIgnores([
    '**/node_modules/',
    'dist/',
    'coverage/',
    'data/',
    '.tmp/',
    'bench/node_modules/',
  ]),

  js.configs.recommended,

  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { sourceType: 'module', globals: nodeGlobals },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { ...nodeGlobals, module: 'writable', require: 'readonly', __dirname: 'readonly' },
    },
  },

  // TypeScript: typescript-eslint recommended (no type information needed).
  {
    files: TS,
    extends: [tseslint.configs.recommended],
    rules: {
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { prefer: 'type-imports', fixStyle: 'separate-type-imports' },
      ],
      '@typescript-eslint/no-import-type-side-effects': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
    },
  },

  // Ambient declarations: `declare var` is how a global is declared on globalThis.
  {
    files: ['**/*.d.ts'],
    rules: { 'no-var': 'off' },
  },

  // Type-aware rules, only for the files tsconfig.json includes (the project service needs them
  // to belong to a tsconfig; web/ will get its own tsconfig.json and can be added here then).
  {
    files: ['{src,test,bench,scripts,examples}/**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // One string-literal union per state machine: every state must be handled (STYLE.md rule 4).
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: false, requireDefaultForNonUnion: false },
      ],
    },
  },

  // src/**: no module-level mutable state (STYLE.md HARD rule 3), no console (diagnostics_channel).
  {
    files: ['src/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector:
            ":matches(Program, Program > ExportNamedDeclaration) > VariableDeclaration[kind='let']",
          message: 'No module-level `let`: keep mutable state in instances (STYLE.md rule 3).',
        },
        {
          selector:
            ":matches(Program, Program > ExportNamedDeclaration) > VariableDeclaration[kind='var']",
          message: 'No module-level `var`: keep mutable state in instances (STYLE.md rule 3).',
        },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/cli/**'],
    rules: {
      'no-console': 'error',
    },
  },

  // base/, sip/, sdp/: zero dependencies, no node: (STYLE.md HARD rule 2). Only relative imports.
  // Unit tests beside them may use node:test, node:assert, node:fs (fixtures) and fast-check.
  {
    files: ['src/{base,sip,sdp}/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^(?!\\.{1,2}/)',
              message:
                'src/base, src/sip and src/sdp may only import relative modules: no node: and no npm packages (STYLE.md rule 2).',
            },
          ],
        },
      ],
    },
  },

  // sip/, transaction/, dialog/: time comes from the injected Clock (STYLE.md rule 3).
  {
    files: ['src/{sip,transaction,dialog}/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        ...timers.map((name) => ({ name, message: timerMessage })),
      ],
      'no-restricted-properties': [
        'error',
        ...['globalThis', 'window', 'self', 'global'].flatMap((object) =>
          timers.map((property) => ({ object, property, message: timerMessage })),
        ),
      ],
    },
  },

  // Tests and benchmarks: lenient.
  {
    files: TESTS,
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-empty-function': 'off',
      '@typescript-eslint/no-unused-expressions': 'off',
      '@typescript-eslint/ban-ts-comment': 'off',
    },
  },
]);
