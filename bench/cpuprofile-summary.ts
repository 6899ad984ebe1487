/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): top functions by self time, top by inclusive time for
 * Gatehouse's own code (src/), and self time grouped by where the code lives (src/ file, npm package, node:
 * internals, V8/native).
 *
 * Usage: scripts/node bench/cpuprofile-summary.ts FILE.cpuprofile [--top N] [--skip SECONDS]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Row {
  name: string;
  where: string;
  ms: number;
  share: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Sampled time outside (idle). */
  idleMs: number;
  topSelf: Row[];
  /** Share of busy samples with code of this area anywhere on the stack (what it costs including what it calls). */
  onStackByArea: Row[];
  /** Inclusive time of functions in the repository's src/ (what the request path spends in Gatehouse code). */
  topInclusiveSrc: Row[];
  byArea: Row[];
  /** Full self-time maps (ms), for comparing two profiles. */
  selfByFunction: Map<string, number>;
  selfByArea: Map<string, number>;
}

function location(frame: CallFrame): string {
  const url = frame.url.replace(/^file:\/\//, '');
  const short = url.replace(/^.*\/node_modules\//, '').replace(/^.*?\/(src|bench)\//, '$1/');
  return url ? `${short}:${frame.lineNumber + 1}` : '(native)';
}

function area(frame: CallFrame): string {
  const url = frame.url;
  if (!url) return frame.functionName.startsWith('(') ? frame.functionName : '(native/V8 builtins)';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[1] ?? url.slice(5)}`;
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return `npm:${pkg[1]}`;
  const src = /\/(src|bench)\/(.*)$/.exec(url);
  if (src) return `${src[1]}/${src[2]}`;
  return url;
}

/**
 * @param skipMs ignore samples taken in the first `skipMs` of the profile (start-up, warm-up).
 */
export function summarize(profile: CpuProfile, top = 25, skipMs = 0): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n);
  const self = new Map<number, number>();
  let t = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = (profile.timeDeltas[i] ?? 0) / 1000;
    t += delta;
    if (t < skipMs) continue;
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + delta);
  }
  let totalMs = 0;
  let idleMs = 0;
  for (const [id, ms] of self) {
    totalMs += ms;
    if (byId.get(id)!.callFrame.functionName === '(idle)') idleMs += ms;
  }
  const key = (f: CallFrame) => `${f.functionName || '(anonymous)'}\u0000${location(f)}`;

  // Native frames (socket writes, string encoding, regexps) are named with the nearest caller outside node's
  // internals, so that e.g. a `writev` shows whether pino or the proxy wrote.
  const via = (node: ProfileNode): string => {
    for (let p = parent.get(node.id); p; p = parent.get(p.id)) {
      const url = p.callFrame.url;
      if (url && !url.startsWith('node:'))
        return ` ← ${p.callFrame.functionName || '(anonymous)'} ${location(p.callFrame)}`;
    }
    return '';
  };
  const selfByFn = new Map<string, number>();
  const selfByArea = new Map<string, number>();
  const onStack = new Map<string, number>();
  for (const [id, ms] of self) {
    const node = byId.get(id)!;
    const f = node.callFrame;
    const k = f.url ? key(f) : `${key(f)}${via(node)}`;
    selfByFn.set(k, (selfByFn.get(k) ?? 0) + ms);
    selfByArea.set(area(f), (selfByArea.get(area(f)) ?? 0) + ms);
    const areas = new Set<string>();
    for (let n: ProfileNode | undefined = node; n; n = parent.get(n.id))
      if (n.callFrame.url) areas.add(area(n.callFrame));
    for (const a of areas) onStack.set(a, (onStack.get(a) ?? 0) + ms);
  }

  // Inclusive time: self of the node and all its descendants, counted once per function on a path (recursion).
  const inclusive = new Map<string, number>();
  const root = profile.nodes[0]!;
  const onPath = new Map<string, number>();
  const visit = (node: ProfileNode): number => {
    const k = key(node.callFrame);
    onPath.set(k, (onPath.get(k) ?? 0) + 1);
    let sum = self.get(node.id) ?? 0;
    for (const c of node.children ?? []) sum += visit(byId.get(c)!);
    const depth = onPath.get(k)! - 1;
    if (depth === 0) onPath.delete(k);
    else onPath.set(k, depth);
    if (depth === 0) inclusive.set(k, (inclusive.get(k) ?? 0) + sum);
    return sum;
  };
  visit(root);

  const busy = totalMs - idleMs;
  const rows = (m: Map<string, number>, filter: (k: string) => boolean = () => true): Row[] =>
    [...m]
      .filter(([k]) => filter(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, ms]) => {
        const [name, where] = k.split('\u0000') as [string, string | undefined];
        return { name, where: where ?? '', ms, share: ms / busy };
      });
  return {
    totalMs,
    idleMs,
    topSelf: rows(selfByFn, (k) => !k.startsWith('(idle)')),
    onStackByArea: rows(onStack, (k) => !k.startsWith('node:') || k === 'node:crypto' || k === 'node:fs'),
    topInclusiveSrc: rows(inclusive, (k) => k.split('\u0000')[1]!.startsWith('src/')),
    byArea: rows(selfByArea, (k) => k !== '(idle)'),
    selfByFunction: selfByFn,
    selfByArea,
  };
}

/**
 * Where `b` spends more than `a` per request: self time per request (µs) by function and by area, sorted by the
 * difference. Functions shared by both (node internals, undici) line up by name and location.
 */
export function formatComparison(
  aName: string,
  a: ProfileSummary,
  aRequests: number,
  bName: string,
  b: ProfileSummary,
  bRequests: number,
  top = 20,
): string {
  // Native frames carry their caller (" ← …"), which differs between two programs: compare them by name only.
  const strip = (m: Map<string, number>) => {
    const out = new Map<string, number>();
    for (const [k, v] of m) out.set(k.replace(/ ← .*$/, ''), (out.get(k.replace(/ ← .*$/, '')) ?? 0) + v);
    return out;
  };
  const diff = (xa: Map<string, number>, xb: Map<string, number>) => {
    const ma = strip(xa);
    const mb = strip(xb);
    const keys = new Set([...ma.keys(), ...mb.keys()]);
    return [...keys]
      .filter((k) => !k.startsWith('(idle)'))
      .map((k) => ({ k, a: ((ma.get(k) ?? 0) * 1000) / aRequests, b: ((mb.get(k) ?? 0) * 1000) / bRequests }))
      .sort((x, y) => y.b - y.a - (x.b - x.a));
  };
  const usA = ((a.totalMs - a.idleMs) * 1000) / aRequests;
  const usB = ((b.totalMs - b.idleMs) * 1000) / bRequests;
  const line = (label: string, x: { a: number; b: number }) =>
    `  ${(x.b - x.a).toFixed(1).padStart(7)}  ${x.a.toFixed(1).padStart(7)}  ${x.b.toFixed(1).padStart(7)}   ${label}`;
  const header = `  ${'Δ µs'.padStart(7)}  ${aName.slice(0, 7).padStart(7)}  ${bName.slice(0, 7).padStart(7)}`;
  return [
    `Busy CPU per request: ${aName} ${usA.toFixed(1)} µs, ${bName} ${usB.toFixed(1)} µs (+${(usB - usA).toFixed(1)} µs, ×${(usB / usA).toFixed(2)}) — main thread only, profiler overhead included`,
    `\nSelf time per request by area, largest extra cost of ${bName} first:\n${header}`,
    ...diff(a.selfByArea, b.selfByArea)
      .slice(0, top)
      .map((x) => line(x.k, x)),
    `\nSelf time per request by function, largest extra cost of ${bName} first:\n${header}`,
    ...diff(a.selfByFunction, b.selfByFunction)
      .slice(0, top)
      .map((x) => line(x.k.replace('\u0000', '  '), x)),
  ].join('\n');
}

export function formatSummary(s: ProfileSummary): string {
  const busy = s.totalMs - s.idleMs;
  const table = (title: string, rows: Row[]) =>
    [
      `${title}`,
      ...rows.map(
        (r) =>
          `  ${(r.share * 100).toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(7)} ms  ${r.name.padEnd(38)} ${r.where}`,
      ),
    ].join('\n');
  return [
    `sampled ${(s.totalMs / 1000).toFixed(1)} s (after any skipped start), idle ${((s.idleMs / s.totalMs) * 100).toFixed(1)}% — shares below are of the busy (non-idle) time, ${(busy / 1000).toFixed(1)} s`,
    table('Top self time by function:', s.topSelf),
    table('Self time by area:', s.byArea),
    table('On the stack (inclusive) by area — src/ files and npm packages:', s.onStackByArea),
    table('Inclusive time of Gatehouse functions (src/):', s.topInclusiveSrc),
  ].join('\n\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' }, skip: { type: 'string', default: '0' } },
  });
  if (positionals.length !== 1) {
    console.error('usage: scripts/node bench/cpuprofile-summary.ts FILE.cpuprofile [--top N] [--skip SECONDS]');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as CpuProfile;
  console.log(formatSummary(summarize(profile, Number(values.top), Number(values.skip) * 1000)));
}
