/**
 * A small CSV reader for `switchboard user import` (RFC 4180 fields: comma-separated,
 * optionally double-quoted with "" for a quote). A record is one line: quoted fields
 * may not span lines, so every error names the file line it is on.
 */

export interface CsvLine {
  /** 1-based line number in the file. */
  readonly line: number;
  readonly fields: string[];
}

export type CsvResult =
  { ok: true; lines: CsvLine[] } | { ok: false; line: number; reason: string };

/** Splits `text` into records, skipping blank lines. */
export function parseCsv(text: string): CsvResult {
  const out: CsvLine[] = [];
  const rows = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    if (row.trim() === '') continue;
    const fields = parseCsvLine(row);
    if (typeof fields === 'string') return { ok: false, line: i + 1, reason: fields };
    out.push({ line: i + 1, fields });
  }
  return { ok: true, lines: out };
}

/** The fields of one line, or an error reason. */
function parseCsvLine(row: string): string[] | string {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (row[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        const q = row.indexOf('"', i);
        if (q < 0) return 'unterminated quoted field';
        value += row.slice(i, q);
        if (row[q + 1] === '"') {
          value += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      fields.push(value);
      if (i === row.length) return fields;
      if (row[i] !== ',') return 'text after a closing quote';
      i++;
    } else {
      const comma = row.indexOf(',', i);
      if (comma < 0) {
        fields.push(row.slice(i));
        return fields;
      }
      fields.push(row.slice(i, comma));
      i = comma + 1;
    }
  }
}
