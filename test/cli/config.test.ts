/**
 * The configuration of `switchboard serve` (src/cli/config.ts): the schema's messages
 * (one line naming the key), YAML files (syntax errors with a line, duplicate keys,
 * paths relative to the file), flags over the file, the defaults, the checks across
 * keys; and docs/configuration.md against the schema (every key in the table with its
 * default, the example file valid and complete).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import {
  CONFIG_DEFAULTS,
  ConfigError,
  configKeys,
  loadConfig,
  loadConfigFile,
  parseConfig,
  resolveConfig,
  type ServerConfigFile,
} from '../../src/cli/config.ts';

const here = import.meta.dirname ?? dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const DOC = readFileSync(join(root, 'docs/configuration.md'), 'utf8');

/** The message of the ConfigError `fn` throws. */
function problem(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.code, 'SB_ERR_CONFIG');
    assert.doesNotMatch(e.message, /\n/, 'one line');
    return e.message;
  }
  assert.fail('no ConfigError');
}

async function problemAsync(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.code, 'SB_ERR_CONFIG');
    assert.doesNotMatch(e.message, /\n/, 'one line');
    return e.message;
  }
  assert.fail('no ConfigError');
}

describe('config schema: one line naming the key', () => {
  const rows: [string, unknown, RegExp][] = [
    [
      'a bad listen spec',
      { listen: ['udp:127.0.0.1:5060', 'sctp:0.0.0.0:5060'] },
      /^config: listen\[1\]: expected PROTO:HOST:PORT .*got "sctp:0\.0\.0\.0:5060" \(unknown protocol "sctp"\)$/,
    ],
    [
      'a host name in listen',
      { listen: ['udp:example.com:5060'] },
      /^config: listen\[0\]: expected PROTO:HOST:PORT .*not an IP address/,
    ],
    ['a bad port', { listen: ['tcp:127.0.0.1:70000'] }, /^config: listen\[0\]: .*bad port/],
    ['an empty listen list', { listen: [] }, /^config: listen: expected at least one listener$/],
    [
      'an unknown top-level key',
      { dataDir: 'x', dataDirectory: 'y' },
      /^config: dataDirectory: unknown key \(expected one of dataDir, domains, listen, /,
    ],
    [
      'a misspelt nested key',
      { registrar: { minExpire: 30 } },
      /^config: registrar\.minExpire: unknown key \(expected one of minExpires, maxExpires, defaultExpires, purgeInterval\)$/,
    ],
    [
      'an unknown key is reported before other problems',
      { limits: { maxBodyBytes: 'big', maxBody: 1 } },
      /^config: limits\.maxBody: unknown key .*\(and 1 more\)$/,
    ],
    [
      'a string for a number',
      { registrar: { minExpires: '60' } },
      /^config: registrar\.minExpires: expected a number, got string "60"$/,
    ],
    [
      'a fraction for a count',
      { limits: { maxServerTransactions: 1.5 } },
      /^config: limits\.maxServerTransactions: expected a whole number, got number 1\.5$/,
    ],
    [
      'zero for a count',
      { limits: { maxConnectionsPerIp: 0 } },
      /^config: limits\.maxConnectionsPerIp: must be at least 1$/,
    ],
    [
      'a purge interval of 0',
      { registrar: { purgeInterval: 0 } },
      /^config: registrar\.purgeInterval: expected a number of seconds above 0$/,
    ],
    [
      'a negative shutdown timeout',
      { shutdownTimeout: -1 },
      /^config: shutdownTimeout: expected a number of seconds, 0 or more$/,
    ],
    [
      'an empty value',
      { shutdownTimeout: null },
      /^config: shutdownTimeout: expected a number, got null/,
    ],
    [
      'a log level',
      { logLevel: 'loud' },
      /^config: logLevel: expected one of debug, info, warn, error, silent$/,
    ],
    ['tls without its key', { tls: { cert: 'c.pem' } }, /^config: tls\.key: missing/],
    [
      'a bad domain',
      { domains: ['example.com', 'bad domain'] },
      /^config: domains\[1\]: not a domain name: "bad domain"$/,
    ],
    [
      'a single domain, not a list',
      { domains: 'example.com' },
      /^config: domains: expected a list/,
    ],
    ['a list at the top', ['udp:0.0.0.0:5060'], /^config: expected a mapping of keys, got a list$/],
  ];
  for (const [name, input, expected] of rows) {
    it(name, () =>
      assert.match(
        problem(() => parseConfig(input)),
        expected,
      ),
    );
  }

  it('an empty document sets nothing', () => {
    assert.deepEqual(parseConfig(null), {});
    assert.deepEqual(parseConfig({}), {});
  });
});

describe('resolveConfig: flags over the file over the defaults', () => {
  it('nothing given: the defaults', () => {
    assert.deepEqual(resolveConfig({}), CONFIG_DEFAULTS);
    assert.deepEqual(CONFIG_DEFAULTS.listen, ['udp:0.0.0.0:5060', 'tcp:0.0.0.0:5060']);
  });

  it('the file, with partial sections completed by the defaults', () => {
    const c = resolveConfig({
      listen: ['udp:127.0.0.1:0'],
      domains: ['Example.COM'],
      registrar: { minExpires: 30 },
      limits: { maxBodyBytes: 1000 },
      shutdownTimeout: 0.5,
    });
    assert.deepEqual(c.listen, ['udp:127.0.0.1:0']);
    assert.deepEqual(c.domains, ['example.com']);
    assert.deepEqual(c.registrar, { ...CONFIG_DEFAULTS.registrar, minExpires: 30 });
    assert.equal(c.limits.maxBodyBytes, 1000);
    assert.equal(c.limits.maxServerTransactions, CONFIG_DEFAULTS.limits.maxServerTransactions);
    assert.equal(c.shutdownTimeout, 0.5);
  });

  it('a flag replaces the key (a repeatable flag the whole list)', () => {
    const file: ServerConfigFile = {
      dataDir: '/srv/a',
      listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
      domains: ['a.example'],
      logLevel: 'debug',
      tls: { cert: '/etc/c.pem', key: '/etc/k.pem' },
    };
    const c = resolveConfig(file, {
      dataDir: 'b',
      listen: ['ws:127.0.0.1:0'],
      domains: ['b.example'],
      logLevel: 'warn',
      tlsKey: 'other.pem',
    });
    assert.equal(c.dataDir, 'b');
    assert.deepEqual(c.listen, ['ws:127.0.0.1:0']);
    assert.deepEqual(c.domains, ['b.example']);
    assert.equal(c.logLevel, 'warn');
    assert.deepEqual(c.tls, { cert: '/etc/c.pem', key: 'other.pem' });
  });

  it('flags are checked and named as flags', () => {
    assert.match(
      problem(() => resolveConfig({}, { listen: ['udp:127.0.0.1:0', 'bogus'] })),
      /^serve: --listen: expected PROTO:HOST:PORT .*got "bogus"/,
    );
    assert.match(
      problem(() => resolveConfig({}, { domains: ['no way'] })),
      /^serve: --domain: not a domain name/,
    );
    assert.match(
      problem(() => resolveConfig({}, { logLevel: 'chatty' })),
      /^serve: --log-level: expected one of debug/,
    );
    assert.match(
      problem(() => resolveConfig({}, { tlsCert: 'c.pem' })),
      /^serve: --tls-key: a TLS certificate needs its key/,
    );
  });

  it('tls: and wss: listeners need a certificate', () => {
    assert.match(
      problem(() => resolveConfig({ listen: ['udp:127.0.0.1:0', 'tls:127.0.0.1:0'] })),
      /^config: listen\[1\]: tls:127\.0\.0\.1:0 needs a certificate: set tls\.cert and tls\.key .* --tls-cert FILE --tls-key FILE$/,
    );
    assert.match(
      problem(() => resolveConfig({}, { listen: ['wss:127.0.0.1:0'] })),
      /^serve: --listen: wss:127\.0\.0\.1:0 needs a certificate/,
    );
    const ok = resolveConfig({ listen: ['tls:127.0.0.1:0'] }, { tlsCert: 'c', tlsKey: 'k' });
    assert.deepEqual(ok.tls, { cert: 'c', key: 'k' });
  });

  it('registrar: minExpires <= defaultExpires <= maxExpires (RFC 3261 §10.3 step 7)', () => {
    assert.match(
      problem(() => resolveConfig({ registrar: { minExpires: 7200 } })),
      /^config: registrar\.minExpires: 7200 is above registrar\.maxExpires \(3600\)$/,
    );
    assert.match(
      problem(() => resolveConfig({ registrar: { defaultExpires: 30 } })),
      /^config: registrar\.defaultExpires: 30 is outside registrar\.minExpires\.\.maxExpires \(60\.\.3600\)$/,
    );
    const c = resolveConfig({ registrar: { minExpires: 1, defaultExpires: 30, maxExpires: 30 } });
    assert.deepEqual(c.registrar, {
      minExpires: 1,
      defaultExpires: 30,
      maxExpires: 30,
      purgeInterval: 60,
    });
  });
});

describe('loadConfig: YAML files', () => {
  let dir: string;
  const file = (name: string, text: string): string => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-config-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('paths in the file are relative to its directory; flags to the working directory', async () => {
    const f = file(
      'paths.yaml',
      'dataDir: data\ntls:\n  cert: certs/c.pem\n  key: /abs/k.pem\nlisten: [tls:127.0.0.1:0]\n',
    );
    const c = await loadConfig(f);
    assert.equal(c.dataDir, join(dir, 'data'));
    assert.deepEqual(c.tls, { cert: join(dir, 'certs/c.pem'), key: '/abs/k.pem' });
    assert.equal((await loadConfig(f, { dataDir: 'rel' })).dataDir, 'rel');
  });

  it('an empty file, or one with only comments: the defaults', async () => {
    assert.deepEqual(await loadConfig(file('empty.yaml', '')), CONFIG_DEFAULTS);
    assert.deepEqual(await loadConfig(file('comments.yaml', '# nothing\n')), CONFIG_DEFAULTS);
    assert.deepEqual(await loadConfig(undefined), CONFIG_DEFAULTS);
  });

  it('not YAML: the file, line and column', async () => {
    const f = file('bad.yaml', 'listen:\n  - udp:127.0.0.1:0\n bad: [\n');
    assert.match(
      await problemAsync(loadConfigFile(f)),
      new RegExp(`^config: ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} line \\d+, column \\d+: `),
    );
  });

  it('a duplicate key is an error', async () => {
    const f = file('dup.yaml', 'logLevel: info\nlogLevel: debug\n');
    assert.match(
      await problemAsync(loadConfigFile(f)),
      /line 2, column 1: .*[Mm]ap keys must be unique/,
    );
  });

  it('schema errors name the key', async () => {
    const f = file('schema.yaml', 'listen:\n  - udp:127.0.0.1:0\n  - udp:localhost:5060\n');
    assert.match(
      await problemAsync(loadConfigFile(f)),
      /^config: listen\[1\]: expected PROTO:HOST:PORT/,
    );
  });

  it('a missing file', async () => {
    assert.match(
      await problemAsync(loadConfigFile(join(dir, 'nope.yaml'))),
      /^config: cannot read .*nope\.yaml: no such file$/,
    );
  });
});

describe('docs/configuration.md and the schema', () => {
  /** The rows of the table whose header starts with `| key`. */
  const keyRows = (): Map<string, string[]> => {
    const lines = DOC.split('\n');
    const start = lines.findIndex((l) => /^\| key +\| default +\| meaning/.test(l));
    assert.ok(start >= 0, 'a table "| key | default | meaning |"');
    const rows = new Map<string, string[]>();
    for (const line of lines.slice(start + 2)) {
      if (!line.startsWith('|')) break;
      const cells = line
        .split(/(?<!\\)\|/)
        .slice(1, -1)
        .map((c) => c.trim());
      const m = /^`([^`]+)`$/.exec(cells[0]!);
      if (m !== null) rows.set(m[1]!, cells);
    }
    return rows;
  };

  it('every key of the schema is in the table, and nothing else', () => {
    const rows = keyRows();
    assert.deepEqual([...rows.keys()], configKeys());
  });

  it('the table gives each default the code has', () => {
    const rows = keyRows();
    for (const key of configKeys()) {
      const value = key
        .split('.')
        .reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], CONFIG_DEFAULTS);
      if (value === undefined || (typeof value === 'object' && !Array.isArray(value))) continue;
      const cell = rows.get(key)![1]!;
      const expected = Array.isArray(value)
        ? value.length === 0
          ? '`[]`'
          : value.map((v) => `\`${String(v)}\``).join(', ')
        : `\`${String(value)}\``;
      assert.equal(cell, expected, key);
    }
  });

  it('the example file is valid and sets every key', () => {
    const m = /```yaml\n(# switchboard\.yaml[\s\S]*?)```/.exec(DOC);
    assert.ok(m, 'a ```yaml example starting "# switchboard.yaml"');
    const input = parseYaml(m[1]!) as unknown;
    const parsed = parseConfig(input);
    const set: string[] = [];
    const walk = (o: Record<string, unknown>, prefix: string): void => {
      for (const [k, v] of Object.entries(o)) {
        set.push(prefix + k);
        if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
          walk(v as Record<string, unknown>, `${prefix}${k}.`);
        }
      }
    };
    walk(parsed as Record<string, unknown>, '');
    assert.deepEqual(set.sort(), configKeys().sort());
    // and resolves (the cross-key checks pass)
    resolveConfig(parsed);
  });

  it('every flag of serve is in the flag table', () => {
    for (const flag of [
      '--config FILE',
      '--data-dir DIR',
      '--domain NAME',
      '--listen SPEC',
      '--log-level LEVEL',
      '--tls-cert FILE',
      '--tls-key FILE',
    ]) {
      assert.match(DOC, new RegExp(`^\\| \`${flag}\` +\\|`, 'm'), flag);
    }
  });
});
