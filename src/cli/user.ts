/**
 * `switchboard user add|passwd|remove|list|import` and `switchboard domain add|list|remove`:
 * manage the store in `--data-dir` (the SQLite adapter). Passwords are hashed here into
 * H(A1) values (realm = the AOR's domain); the store never sees them.
 */
import { readFile } from 'node:fs/promises';
import { credentialsFor, parseAor } from './aor.ts';
import { parseCsv } from './csv.ts';
import { EXIT_NOT_FOUND, EXIT_OK, fail, readErrorReason, type CliIo } from './io.ts';
import { parseStoreArgs, withStore, type ParsedStoreArgs } from './store-options.ts';

const USER_SUBCOMMANDS = 'add, passwd, remove, list, import';
const DOMAIN_SUBCOMMANDS = 'add, list, remove';

function parse(io: CliIo, argv: readonly string[]): ParsedStoreArgs | number {
  try {
    return parseStoreArgs(argv);
  } catch (e) {
    return fail(io, `${e instanceof Error ? e.message : String(e)} (see "switchboard --help")`);
  }
}

/** A usage error when an option is given to a subcommand that does not take it. */
function onlyOptions(
  io: CliIo,
  cmd: string,
  a: ParsedStoreArgs,
  allowed: string[],
): number | undefined {
  const given: [string, boolean][] = [
    ['password', a.password !== undefined],
    ['domain', a.domain !== undefined],
    ['json', a.json],
  ];
  for (const [name, present] of given) {
    if (present && !allowed.includes(name))
      return fail(io, `${cmd}: --${name} does not apply here`);
  }
  return undefined;
}

function oneArg(io: CliIo, cmd: string, what: string, a: ParsedStoreArgs): string | number {
  const [, ...rest] = a.positionals;
  if (rest.length === 0) return fail(io, `${cmd}: missing ${what}`);
  if (rest.length > 1) return fail(io, `${cmd}: unexpected argument ${JSON.stringify(rest[1])}`);
  return rest[0]!;
}

function domainMissing(domain: string): string {
  return `domain ${domain} is not configured; add it first with "switchboard domain add ${domain}"`;
}

/** `switchboard user ...` (argv after "user"). */
export async function runUser(argv: readonly string[], io: CliIo): Promise<number> {
  const a = parse(io, argv);
  if (typeof a === 'number') return a;
  const sub = a.positionals[0];
  const cmd = `user ${sub ?? ''}`.trim();
  switch (sub) {
    case 'add':
    case 'passwd': {
      const bad = onlyOptions(io, cmd, a, ['password']);
      if (bad !== undefined) return bad;
      const arg = oneArg(io, cmd, 'AOR', a);
      if (typeof arg === 'number') return arg;
      if (a.password === undefined) return fail(io, `${cmd}: missing --password PW`);
      if (a.password === '') return fail(io, `${cmd}: the password must not be empty`);
      const password = a.password;
      const aor = parseAor(arg);
      if (!aor.ok) return fail(io, `${cmd}: ${aor.reason}`);
      const creds = credentialsFor(aor.user, aor.domain, password);
      return withStore(io, a.dataDir, async (store) => {
        if (sub === 'passwd') {
          if (!(await store.users.setPassword(aor.aor, creds))) {
            return fail(io, `${cmd}: no user ${aor.aor}`, EXIT_NOT_FOUND);
          }
          io.stdout.write(`password changed for ${aor.aor}\n`);
          return EXIT_OK;
        }
        const r = await store.users.add(aor.aor, creds);
        if (r === 'unknown-domain') return fail(io, `${cmd}: ${domainMissing(aor.domain)}`);
        if (r === 'exists') return fail(io, `${cmd}: user ${aor.aor} already exists`);
        io.stdout.write(`added ${aor.aor}\n`);
        return EXIT_OK;
      });
    }
    case 'remove': {
      const bad = onlyOptions(io, cmd, a, []);
      if (bad !== undefined) return bad;
      const arg = oneArg(io, cmd, 'AOR', a);
      if (typeof arg === 'number') return arg;
      const aor = parseAor(arg);
      if (!aor.ok) return fail(io, `${cmd}: ${aor.reason}`);
      return withStore(io, a.dataDir, async (store) => {
        if (!(await store.users.remove(aor.aor))) {
          return fail(io, `${cmd}: no user ${aor.aor}`, EXIT_NOT_FOUND);
        }
        io.stdout.write(`removed ${aor.aor}\n`);
        return EXIT_OK;
      });
    }
    case 'list': {
      const bad = onlyOptions(io, cmd, a, ['domain', 'json']);
      if (bad !== undefined) return bad;
      if (a.positionals.length > 1) {
        return fail(io, `${cmd}: unexpected argument ${JSON.stringify(a.positionals[1])}`);
      }
      return withStore(io, a.dataDir, async (store) => {
        const users = await store.users.list(a.domain);
        if (a.json) {
          const rows = users.map((u) => ({ aor: u.aor, user: u.user, domain: u.domain }));
          io.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        } else {
          io.stdout.write(users.map((u) => u.aor + '\n').join(''));
        }
        return EXIT_OK;
      });
    }
    case 'import': {
      const bad = onlyOptions(io, cmd, a, []);
      if (bad !== undefined) return bad;
      const file = oneArg(io, cmd, 'FILE.csv', a);
      if (typeof file === 'number') return file;
      return importUsers(io, a.dataDir, file);
    }
    case undefined:
      return fail(io, `user: missing subcommand (${USER_SUBCOMMANDS})`);
    default:
      return fail(io, `user: unknown subcommand ${JSON.stringify(sub)} (${USER_SUBCOMMANDS})`);
  }
}

async function importUsers(io: CliIo, dataDir: string, file: string): Promise<number> {
  const cmd = `user import ${file}`;
  let text: string;
  try {
    const bytes = io.readFile !== undefined ? await io.readFile(file) : await readFile(file);
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    return fail(
      io,
      `cannot read ${file}: ${e instanceof TypeError ? 'not UTF-8' : readErrorReason(e)}`,
    );
  }
  const rejected = (line: number, reason: string): number =>
    fail(io, `${cmd}: line ${line}: ${reason}; nothing imported`);
  const csv = parseCsv(text);
  if (!csv.ok) return rejected(csv.line, csv.reason);
  const [header, ...records] = csv.lines;
  if (
    header === undefined ||
    header.fields.length !== 2 ||
    header.fields[0]!.trim().toLowerCase() !== 'aor' ||
    header.fields[1]!.trim().toLowerCase() !== 'password'
  ) {
    return rejected(header?.line ?? 1, 'the header row must be "aor,password"');
  }
  const parsed: { line: number; aor: string; user: string; domain: string; password: string }[] =
    [];
  for (const { line, fields } of records) {
    if (fields.length !== 2)
      return rejected(line, `expected 2 fields (aor,password), got ${fields.length}`);
    const [aorText, password] = fields as [string, string];
    if (aorText.trim() === '') return rejected(line, 'missing aor');
    if (password === '') return rejected(line, 'missing password');
    const aor = parseAor(aorText);
    if (!aor.ok) return rejected(line, aor.reason);
    parsed.push({ line, aor: aor.aor, user: aor.user, domain: aor.domain, password });
  }
  return withStore(io, dataDir, async (store) => {
    const domains = new Set(await store.domains.list());
    for (const p of parsed) {
      if (!domains.has(p.domain)) return rejected(p.line, domainMissing(p.domain));
    }
    const rows = parsed.map((p) => ({
      aor: p.aor,
      credentials: credentialsFor(p.user, p.domain, p.password),
    }));
    const r = await store.users.importMany(rows);
    if (!r.ok) {
      const p = parsed[r.index]!;
      const why =
        r.reason === 'exists'
          ? `user ${p.aor} already exists`
          : r.reason === 'duplicate'
            ? `user ${p.aor} appears twice in the file`
            : domainMissing(p.domain);
      return rejected(p.line, why);
    }
    io.stdout.write(`imported ${r.count} users\n`);
    return EXIT_OK;
  });
}

/** `switchboard domain ...` (argv after "domain"). */
export async function runDomain(argv: readonly string[], io: CliIo): Promise<number> {
  const a = parse(io, argv);
  if (typeof a === 'number') return a;
  const sub = a.positionals[0];
  const cmd = `domain ${sub ?? ''}`.trim();
  switch (sub) {
    case 'add':
    case 'remove': {
      const bad = onlyOptions(io, cmd, a, []);
      if (bad !== undefined) return bad;
      const arg = oneArg(io, cmd, 'NAME', a);
      if (typeof arg === 'number') return arg;
      const name = arg.trim().toLowerCase();
      const check = parseAor(`x@${name}`);
      if (name === '' || !check.ok || check.domain !== name) {
        return fail(io, `${cmd}: invalid domain name ${JSON.stringify(arg)}`);
      }
      return withStore(io, a.dataDir, async (store) => {
        if (sub === 'add') {
          if (!(await store.domains.add(name))) {
            return fail(io, `${cmd}: domain ${name} already exists`);
          }
          io.stdout.write(`added domain ${name}\n`);
          return EXIT_OK;
        }
        const r = await store.domains.remove(name);
        if (r === 'not-found') return fail(io, `${cmd}: no domain ${name}`, EXIT_NOT_FOUND);
        if (r === 'in-use') {
          return fail(io, `${cmd}: domain ${name} still has users; remove them first`);
        }
        io.stdout.write(`removed domain ${name}\n`);
        return EXIT_OK;
      });
    }
    case 'list': {
      const bad = onlyOptions(io, cmd, a, ['json']);
      if (bad !== undefined) return bad;
      if (a.positionals.length > 1) {
        return fail(io, `${cmd}: unexpected argument ${JSON.stringify(a.positionals[1])}`);
      }
      return withStore(io, a.dataDir, async (store) => {
        const names = await store.domains.list();
        io.stdout.write(
          a.json ? JSON.stringify(names) + '\n' : names.map((n) => n + '\n').join(''),
        );
        return EXIT_OK;
      });
    }
    case undefined:
      return fail(io, `domain: missing subcommand (${DOMAIN_SUBCOMMANDS})`);
    default:
      return fail(io, `domain: unknown subcommand ${JSON.stringify(sub)} (${DOMAIN_SUBCOMMANDS})`);
  }
}
