/**
 * Path templates side by side: the shape two templates share when they differ only in parameter names (a collision:
 * OpenAPI itself forbids it, and the router could not tell them apart), and overlaps, where a literal segment of
 * one stands where the other has a parameter (`/users/me` and `/users/{id}`). The router's rule decides overlaps:
 * at each segment a literal match is tried before a parameter (src/gateway/http/router.ts), so `/users/me` wins.
 */
import type { Endpoint } from '../schema.ts';

/** `/users/{id}` and `/users/{userId}` → `/users/{}`. */
export function templateShape(path: string): string {
  return path.replace(/\{[^}]+\}/g, '{}');
}

export interface Overlap {
  method: string;
  /** The template that wins for the paths both match (the literal segment comes first). */
  wins: string;
  /** The template that serves the other paths. */
  other: string;
}

/** Pairs of same-method templates that match some of the same paths; the first literal difference decides. */
export function findOverlaps(endpoints: readonly Pick<Endpoint, 'method' | 'path'>[]): Overlap[] {
  // Only templates of the same method and depth can match the same path.
  const groups = new Map<string, string[][]>();
  for (const e of endpoints) {
    const segments = e.path === '/' ? [] : e.path.slice(1).split('/');
    const key = `${e.method} ${segments.length}`;
    let list = groups.get(key);
    if (!list) groups.set(key, (list = []));
    list.push(segments);
  }
  const out: Overlap[] = [];
  for (const [key, list] of groups) {
    const method = key.slice(0, key.indexOf(' '));
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const winner = compare(list[i]!, list[j]!);
        if (winner === 0) continue;
        const [a, b] = winner < 0 ? [list[i]!, list[j]!] : [list[j]!, list[i]!];
        out.push({ method, wins: '/' + a.join('/'), other: '/' + b.join('/') });
      }
    }
  }
  return out;
}

/** -1 when `a` wins an overlap with `b`, 1 when `b` wins, 0 when they do not overlap (or collide). */
function compare(a: string[], b: string[]): number {
  let decided = 0;
  for (let k = 0; k < a.length; k++) {
    const pa = a[k]!.startsWith('{');
    const pb = b[k]!.startsWith('{');
    if (!pa && !pb && a[k] !== b[k]) return 0;
    if (decided === 0 && pa !== pb) decided = pa ? 1 : -1;
  }
  return decided;
}
