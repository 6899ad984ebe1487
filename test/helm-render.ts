/**
 * A renderer for the subset of Helm's Go templates that Gatehouse's charts use, so that a test can render a chart
 * and check the Kubernetes objects it makes where `helm` itself is not installed (Debian does not package it).
 * It knows: `{{- … -}}` whitespace trimming, comments, `define`/`include`, `if`/`else`/`with`/`end`, fields of
 * `.` (`.Values.x.y`, `.Release.Name`, `.Chart.Name`), string and number literals, pipelines, and the functions
 * below. Anything else throws, so a chart that outgrows it fails its test instead of rendering wrongly.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'out'; pipe: string }
  | { kind: 'if' | 'with'; pipe: string; then: Node[]; else: Node[] };

export class ChartFail extends Error {}

interface Token {
  text?: string;
  action?: string;
}

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let trimNext = false;
  while (i < source.length) {
    const open = source.indexOf('{{', i);
    let text = source.slice(i, open === -1 ? source.length : open);
    if (trimNext) text = text.replace(/^\s+/, '');
    trimNext = false;
    if (open === -1) {
      tokens.push({ text });
      break;
    }
    const close = source.indexOf('}}', open);
    if (close === -1) throw new Error('unclosed {{');
    let inner = source.slice(open + 2, close);
    if (inner.startsWith('-')) {
      text = text.replace(/\s+$/, '');
      inner = inner.slice(1);
    }
    if (inner.endsWith('-')) {
      trimNext = true;
      inner = inner.slice(0, -1);
    }
    tokens.push({ text });
    inner = inner.trim();
    if (!inner.startsWith('/*')) tokens.push({ action: inner });
    i = close + 2;
  }
  return tokens;
}

/** Parses tokens into nodes; `define` blocks go into `defines`. */
function parse(tokens: Token[], defines: Map<string, Node[]>): Node[] {
  let pos = 0;
  const block = (): { nodes: Node[]; end: 'end' | 'else' | 'eof' } => {
    const nodes: Node[] = [];
    while (pos < tokens.length) {
      const t = tokens[pos++]!;
      if (t.text !== undefined) {
        if (t.text) nodes.push({ kind: 'text', text: t.text });
        continue;
      }
      const action = t.action!;
      if (action === 'end') return { nodes, end: 'end' };
      if (action === 'else') return { nodes, end: 'else' };
      const m = /^(if|with|define)\s+(.*)$/s.exec(action);
      if (!m) {
        nodes.push({ kind: 'out', pipe: action });
        continue;
      }
      const body = block();
      let otherwise: Node[] = [];
      if (body.end === 'else') {
        const rest = block();
        if (rest.end !== 'end') throw new Error(`${m[1]} without end`);
        otherwise = rest.nodes;
      } else if (body.end !== 'end') throw new Error(`${m[1]} without end`);
      if (m[1] === 'define') defines.set(JSON.parse(m[2]!.trim()) as string, body.nodes);
      else nodes.push({ kind: m[1] as 'if' | 'with', pipe: m[2]!, then: body.nodes, else: otherwise });
    }
    return { nodes, end: 'eof' };
  };
  const { nodes, end } = block();
  if (end !== 'eof') throw new Error(`unexpected ${end}`);
  return nodes;
}

function words(pipe: string): string[] {
  return pipe.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v);
}

function str(v: unknown): string {
  return v === undefined || v === null ? '' : String(v);
}

export class ChartRenderer {
  readonly #defines = new Map<string, Node[]>();
  readonly #templates = new Map<string, Node[]>();

  constructor(chartDir: string) {
    for (const file of readdirSync(join(chartDir, 'templates')).sort()) {
      const nodes = parse(tokenize(readFileSync(join(chartDir, 'templates', file), 'utf8')), this.#defines);
      if (file.endsWith('.yaml')) this.#templates.set(file, nodes);
    }
  }

  /** Every template rendered with `root` (`{ Values, Release, Chart }`), by file name. */
  render(root: Record<string, unknown>): Map<string, string> {
    const out = new Map<string, string>();
    for (const [file, nodes] of this.#templates) out.set(file, this.#run(nodes, root, root));
    return out;
  }

  #run(nodes: Node[], dot: unknown, root: unknown): string {
    let out = '';
    for (const node of nodes) {
      if (node.kind === 'text') out += node.text;
      else if (node.kind === 'out') out += str(this.#pipe(node.pipe, dot, root));
      else {
        const value = this.#pipe(node.pipe, dot, root);
        if (truthy(value)) out += this.#run(node.then, node.kind === 'with' ? value : dot, root);
        else out += this.#run(node.else, dot, root);
      }
    }
    return out;
  }

  #pipe(pipe: string, dot: unknown, root: unknown): unknown {
    let value: unknown;
    pipe.split(/\s+\|\s+/).forEach((stage, i) => {
      const [name, ...args] = words(stage);
      const values = args.map((a) => this.#term(a, dot, root));
      if (i > 0) values.push(value);
      value =
        name!.startsWith('.') || name!.startsWith('"') || /^\d/.test(name!)
          ? this.#term(name!, dot, root)
          : this.#call(name!, values, root);
    });
    return value;
  }

  #term(word: string, dot: unknown, _root: unknown): unknown {
    if (word.startsWith('"')) return JSON.parse(word) as string;
    if (/^\d+$/.test(word)) return Number(word);
    if (word === '.') return dot;
    if (word.startsWith('.')) {
      let v: unknown = dot;
      for (const key of word.slice(1).split('.')) v = (v as Record<string, unknown> | undefined)?.[key];
      return v;
    }
    throw new Error(`unsupported term ${word}`);
  }

  #call(name: string, args: unknown[], root: unknown): unknown {
    switch (name) {
      case 'include': {
        const body = this.#defines.get(args[0] as string);
        if (!body) throw new Error(`no template ${String(args[0])}`);
        return this.#run(body, args[1], root);
      }
      case 'fail':
        throw new ChartFail(str(args[0]));
      case 'not':
        return !truthy(args[0]);
      case 'and':
        return args.every(truthy);
      case 'contains':
        return str(args[1]).includes(str(args[0]));
      case 'printf': {
        let k = 1;
        return str(args[0]).replace(/%s/g, () => str(args[k++]));
      }
      case 'default':
        return truthy(args[1]) ? args[1] : args[0];
      case 'quote':
        return JSON.stringify(str(args[0]));
      case 'trunc':
        return str(args[1]).slice(0, Number(args[0]));
      case 'trimSuffix':
        return str(args[1]).endsWith(str(args[0])) ? str(args[1]).slice(0, -str(args[0]).length) : str(args[1]);
      case 'replace':
        return str(args[2]).split(str(args[0])).join(str(args[1]));
      case 'toYaml':
        return stringify(args[0]).replace(/\n$/, '');
      case 'nindent':
        return `\n${str(args[1]).replace(/^/gm, ' '.repeat(Number(args[0])))}`;
      case 'indent':
        return str(args[1]).replace(/^/gm, ' '.repeat(Number(args[0])));
      case 'sha256sum':
        return createHash('sha256').update(str(args[0])).digest('hex');
      default:
        throw new Error(`unsupported function ${name}`);
    }
  }
}

/** Renders a chart with its values.yaml under `overrides` (merged one level deep per key) and parses each object. */
export function renderChart(
  chartDir: string,
  overrides: Record<string, unknown> = {},
  release = { Name: 'gh', Namespace: 'default', Service: 'Helm' },
): Record<string, unknown>[] {
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  const values = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  for (const [k, v] of Object.entries(overrides))
    values[k] = v && typeof v === 'object' && !Array.isArray(v) ? { ...(values[k] as object), ...v } : v;
  const root = {
    Values: values,
    Release: release,
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  };
  const objects: Record<string, unknown>[] = [];
  for (const text of new ChartRenderer(chartDir).render(root).values()) {
    const doc = parseYaml(text) as Record<string, unknown> | null;
    if (doc) objects.push(doc);
  }
  return objects;
}
