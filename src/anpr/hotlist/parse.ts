/**
 * Hotlist files: CSV and JSON, read row by row into a sink (the list's columns, or entry objects
 * for parseHotlistCsv/parseHotlistJson), with every invalid row reported by its line.
 */
import { MAX_REPORTED_ERRORS, SCRATCH, validate, type HotlistEntryInput, type HotlistRowError, type Validated } from './entry.js';

export type HotlistParseResult = {
  /** The valid rows. If `errors` is not empty the file as a whole should be refused. */
  entries: HotlistEntryInput[];
  /** At most MAX_REPORTED_ERRORS, in file order. */
  errors: HotlistRowError[];
  /** Number of rows with errors (can exceed errors.length). */
  invalidRows: number;
};

export type HotlistFormat = 'csv' | 'json';

export const CSV_COLUMNS = ['plate', 'reason', 'source', 'added', 'expires'] as const;

/**
 * CSV with a header row naming the columns plate, reason, source, added, expires (any order, any
 * case; other columns are ignored). RFC 4180 quoting ("a, b" and "say ""x"""), quoted fields may
 * span lines; UTF-8 BOM, CRLF or LF, blank lines skipped, unquoted fields trimmed. Errors carry the
 * line on which the row starts.
 */
export function parseHotlistCsv(text: string): HotlistParseResult {
  const scratch: Validated = { ...SCRATCH };
  const entries: HotlistEntryInput[] = [];
  const { errors, invalidRows } = scanCsv(text, (p, r, s, a, e) => {
    const problem = validate(p, r, s, a, e, scratch);
    if (problem === undefined) {
      entries.push({ plate: p as string, reason: r as string, source: s as string, added: a as string, expires: e === '' ? null : (e as string) });
    }
    return problem;
  });
  return { entries, errors, invalidRows };
}

/** Receives the five fields of one row; returns the problem when the row is invalid. */
export type RowSink = (plate: unknown, reason: unknown, source: unknown, added: unknown, expires: unknown) => string | undefined;

export type ErrorLog = { errors: HotlistRowError[]; invalidRows: number; rows: number };

function errorLog(): ErrorLog & { fail(line: number, message: string): void } {
  return {
    errors: [],
    invalidRows: 0,
    rows: 0,
    fail(line, message) {
      this.invalidRows++;
      if (this.errors.length < MAX_REPORTED_ERRORS) this.errors.push({ line, message });
    },
  };
}

export function scanCsv(text: string, sink: RowSink): ErrorLog {
  const log = errorLog();
  const len = text.length;
  let pos = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  let header: number[] | undefined; // field index of each CSV_COLUMNS name
  let width = 0;
  let nextQuote = -1;
  const reuse: string[] = [];

  while (pos < len) {
    const startLine = line;
    const nl = text.indexOf('\n', pos);
    const lineEnd = nl < 0 ? len : nl;
    let fields: string[];
    if (nextQuote < pos) nextQuote = text.indexOf('"', pos) >>> 0; // -1 becomes 2^32 - 1: none
    if (nextQuote > lineEnd) {
      let end = lineEnd;
      if (end > pos && text.charCodeAt(end - 1) === 13) end--;
      const start = pos;
      pos = lineEnd + 1;
      line++;
      fields = splitLine(text, start, end, reuse);
      if (fields.length === 1 && fields[0] === '') continue; // blank line
    } else {
      const r = readQuotedRecord(text, pos);
      if ('error' in r) {
        log.fail(startLine + r.lineOffset, r.error);
        break; // nothing after a broken quote can be trusted
      }
      fields = r.fields;
      pos = r.next;
      line += r.lines;
    }

    if (!header) {
      const names = fields.map((f) => f.toLowerCase());
      const missing = CSV_COLUMNS.filter((c) => !names.includes(c));
      const doubled = CSV_COLUMNS.filter((c) => names.indexOf(c) !== names.lastIndexOf(c));
      if (missing.length || doubled.length) {
        const problems = `${missing.length ? `; missing ${missing.join(', ')}` : ''}${doubled.length ? `; repeated ${doubled.join(', ')}` : ''}`;
        log.fail(startLine, `header must name the columns ${CSV_COLUMNS.join(',')}${problems}`);
        break;
      }
      header = CSV_COLUMNS.map((c) => names.indexOf(c));
      fields = fields.slice(); // the header outlives `reuse`
      width = fields.length;
      continue;
    }
    log.rows++;
    if (fields.length !== width) {
      log.fail(startLine, `expected ${width} fields, found ${fields.length}`);
      continue;
    }
    const problem = sink(fields[header[0]!], fields[header[1]!], fields[header[2]!], fields[header[3]!], fields[header[4]!]);
    if (problem !== undefined) log.fail(startLine, problem);
  }
  if (!header && log.invalidRows === 0) log.fail(line, 'no header row (plate,reason,source,added,expires)');
  return log;
}

/** The comma-separated, trimmed fields of text[start, end) (which holds no quote), into `out`. */
function splitLine(text: string, start: number, end: number, out: string[]): string[] {
  out.length = 0;
  let from = start;
  for (;;) {
    let to = text.indexOf(',', from);
    if (to < 0 || to > end) to = end;
    let a = from;
    let b = to;
    while (a < b && text.charCodeAt(a) <= 32) a++;
    while (b > a && text.charCodeAt(b - 1) <= 32) b--;
    out.push(text.slice(a, b));
    if (to === end) return out;
    from = to + 1;
  }
}

type QuotedRecord = { fields: string[]; next: number; lines: number } | { error: string; lineOffset: number };

/** One record that contains a quote, from `pos` to the end of its (last) line. */
function readQuotedRecord(text: string, pos: number): QuotedRecord {
  const fields: string[] = [];
  let lines = 0;
  let i = pos;
  const len = text.length;
  for (;;) {
    // Start of a field: skip blanks, then either a quoted or a plain field.
    while (i < len && (text[i] === ' ' || text[i] === '\t')) i++;
    let value: string;
    if (text[i] === '"') {
      const opened = lines;
      let out = '';
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) return { error: 'quoted field is never closed', lineOffset: opened };
        const piece = text.slice(i, q);
        for (let k = piece.indexOf('\n'); k >= 0; k = piece.indexOf('\n', k + 1)) lines++;
        out += piece;
        if (text[q + 1] === '"') {
          out += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      while (i < len && (text[i] === ' ' || text[i] === '\t')) i++;
      if (i < len && text[i] !== ',' && text[i] !== '\n' && !(text[i] === '\r' && (i + 1 === len || text[i + 1] === '\n'))) {
        return { error: 'unexpected character after a closing quote', lineOffset: lines };
      }
      value = out;
    } else {
      let j = i;
      while (j < len && text[j] !== ',' && text[j] !== '\n') {
        if (text[j] === '"') return { error: 'quote inside an unquoted field (quote the whole field and double the quote)', lineOffset: lines };
        j++;
      }
      value = text.slice(i, j).trim();
      i = j;
    }
    fields.push(value);
    if (text[i] === '\r') i++;
    if (i >= len) return { fields, next: len, lines: lines + 1 };
    if (text[i] === '\n') return { fields, next: i + 1, lines: lines + 1 };
    i++; // the comma
  }
}

/**
 * JSON: an array of entry objects, or { "entries": [...] } (other members ignored; entry members
 * other than the five fields are ignored too). Errors carry the line on which the element starts.
 */
export function parseHotlistJson(text: string): HotlistParseResult {
  const scratch: Validated = { ...SCRATCH };
  const entries: HotlistEntryInput[] = [];
  const { errors, invalidRows } = scanJson(text, (p, r, s, a, e) => {
    const problem = validate(p, r, s, a, e, scratch);
    if (problem === undefined) {
      entries.push({ plate: p as string, reason: r as string, source: s as string, added: a as string, expires: (e as string | null | undefined) ?? null });
    }
    return problem;
  });
  return { entries, errors, invalidRows };
}

export function scanJson(text: string, sink: RowSink, reserve?: (rows: number) => void): ErrorLog {
  const log = errorLog();
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (err) {
    const at = /position (\d+)/.exec((err as Error).message);
    log.fail(at ? lineAt(body, Number(at[1])) : 1, `not valid JSON: ${(err as Error).message}`);
    return log;
  }
  const wrapped = !Array.isArray(doc);
  const list = Array.isArray(doc) ? doc : isRecord(doc) && Array.isArray(doc.entries) ? (doc.entries as unknown[]) : undefined;
  if (!list) {
    log.fail(1, 'expected an array of entries or an object {"entries": [...]}');
    return log;
  }
  const bad: Array<{ index: number; message: string }> = [];
  log.rows = list.length;
  reserve?.(list.length);
  list.forEach((item, index) => {
    const problem = isRecord(item) ? sink(item.plate, item.reason, item.source, item.added, item.expires) : 'entry is not an object';
    if (problem === undefined) return;
    log.invalidRows++;
    if (bad.length < MAX_REPORTED_ERRORS) bad.push({ index, message: problem });
  });
  if (bad.length) {
    const lines = elementLines(body, wrapped);
    log.errors = bad.map((b) => ({ line: lines[b.index] ?? 1, message: `entry ${b.index + 1}: ${b.message}` }));
  }
  return log;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let k = text.indexOf('\n'); k >= 0 && k < offset; k = text.indexOf('\n', k + 1)) line++;
  return line;
}

/**
 * The line on which each element of the entries array starts, for text JSON.parse accepted: the
 * top-level array, or the array under the (last) top-level "entries" key.
 */
function elementLines(text: string, wrapped: boolean): number[] {
  const OBJECT = 0;
  const ARRAY = 1;
  const TARGET = 2;
  const stack: number[] = [];
  let lines: number[] = [];
  let line = 1;
  let expectElement = false;
  let expectKey = false;
  let lastKey: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      line++;
      continue;
    }
    if (c === 32 || c === 9 || c === 13 || c === 58 /* : */) continue;
    const top = stack[stack.length - 1];
    const startsValue = c !== 44 && c !== 93 && c !== 125; // not , ] }
    if (startsValue && expectElement && top === TARGET) {
      lines.push(line);
      expectElement = false;
    }
    if (c === 34 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 34) j += text.charCodeAt(j) === 92 ? 2 : 1;
      if (expectKey && stack.length === 1 && top === OBJECT) {
        lastKey = JSON.parse(text.slice(i, j + 1)) as string;
        expectKey = false;
      }
      i = j;
    } else if (c === 123 /* { */) {
      stack.push(OBJECT);
      expectKey = stack.length === 1;
    } else if (c === 91 /* [ */) {
      const target = wrapped ? stack.length === 1 && top === OBJECT && lastKey === 'entries' : stack.length === 0;
      stack.push(target ? TARGET : ARRAY);
      if (target) {
        lines = [];
        expectElement = true;
      }
    } else if (c === 93 || c === 125) {
      stack.pop();
      expectElement = false;
    } else if (c === 44 /* , */) {
      if (top === TARGET) expectElement = true;
      if (stack.length === 1 && top === OBJECT) expectKey = true;
    }
  }
  return lines;
}
