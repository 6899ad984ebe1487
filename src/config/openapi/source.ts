/**
 * Reading an OpenAPI document's text (JSON or YAML) and saying where a problem is: every problem carries the JSON
 * pointer of the value it is about and, when the document came as text, its line and column there.
 */
import { type Node as JsonNode, parse, type ParseError, parseTree } from 'jsonc-parser';
import { LineCounter, parseDocument } from 'yaml';

/** One thing wrong with (or worth knowing about) an OpenAPI document. */
export interface SpecProblem {
  /** JSON pointer into the document as uploaded, e.g. `/paths/~1users~1{id}/get/security/0`; `''` for the root. */
  pointer: string;
  message: string;
  /** 1-based position in the uploaded text (JSON or YAML), when it is known. */
  line?: number;
  column?: number;
}

/** Above this size, problems carry pointers only: finding lines would parse the whole text a second time as YAML. */
const LOCATE_LIMIT = 32 * 1024 * 1024;

export type ParsedText = { ok: true; document: unknown } | { ok: false; problems: SpecProblem[] };

/** Parses JSON (text starting with `{`) or YAML; a syntax error is a problem with its position. */
export function parseSpecText(text: string): ParsedText {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (/^\s*\{/.test(body)) {
    try {
      return { ok: true, document: JSON.parse(body) };
    } catch (error) {
      const message = (error as Error).message;
      const errors: ParseError[] = [];
      parse(body, errors, { disallowComments: true, allowTrailingComma: false });
      const at = errors[0] ? lineColumn(body, errors[0].offset) : {};
      return { ok: false, problems: [{ pointer: '', message: `not valid JSON: ${message}`, ...at }] };
    }
  }
  const lines = new LineCounter();
  const doc = parseDocument(body, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => {
        const pos = lines.linePos(e.pos[0]);
        return { pointer: '', message: `not valid YAML: ${e.message.split('\n')[0]}`, line: pos.line, column: pos.col };
      }),
    };
  }
  return { ok: true, document: doc.toJS({ maxAliasCount: 1000 }) };
}

/** Adds line and column to each problem whose pointer names a place in `text` (the nearest existing ancestor). */
export function locateProblems(text: string, problems: SpecProblem[]): SpecProblem[] {
  if (problems.length === 0 || text.length > LOCATE_LIMIT) return problems;
  const find = /^\s*\{/.test(text) ? jsonLocator(text) : yamlLocator(text);
  if (!find) return problems;
  const position = lineIndex(text);
  return problems.map((p) => {
    if (p.line !== undefined) return p;
    const segments = pointerSegments(p.pointer);
    for (let n = segments.length; n >= 0; n--) {
      const offset = find(segments.slice(0, n));
      if (offset !== undefined) return { ...p, ...position(offset) };
    }
    return p;
  });
}

type Locator = (path: string[]) => number | undefined;

function jsonLocator(text: string): Locator | undefined {
  const root = parseTree(text);
  if (!root) return undefined;
  return (path) => {
    let node: JsonNode | undefined = root;
    for (const segment of path) {
      if (node?.type === 'object')
        node = node.children?.find((property) => property.children?.[0]?.value === segment)?.children?.[1];
      else if (node?.type === 'array') node = node.children?.[Number(segment)];
      else return undefined;
    }
    return node?.offset;
  };
}

function yamlLocator(text: string): Locator | undefined {
  const doc = parseDocument(text, { lineCounter: new LineCounter() });
  if (doc.errors.length > 0) return undefined;
  return (path) => {
    const node = path.length === 0 ? doc.contents : doc.getIn(path, true);
    return (node as { range?: [number, number, number] } | null | undefined)?.range?.[0];
  };
}

export function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

export function pointerOf(...segments: (string | number)[]): string {
  return segments.map((s) => '/' + String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

/** Resolves an internal `#/…` pointer in `document`; undefined when nothing is there. */
export function resolvePointer(document: unknown, pointer: string): unknown {
  let current = document;
  for (const segment of pointerSegments(pointer)) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  return lineIndex(text)(offset);
}

/** Offset → 1-based line and column, by binary search over the line starts. */
function lineIndex(text: string): (offset: number) => { line: number; column: number } {
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - starts[lo]! + 1 };
  };
}
