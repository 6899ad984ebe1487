/**
 * Route matching on canonical paths: host → collection (longest base path on segment boundaries) → endpoint
 * (segment trie, literal segments before parameters). Built once per snapshot; immutable afterwards.
 */
import type { HttpMethod } from '../../config/schema.ts';
import { canonicalize, decodeSegment, segmentDepth } from './canonical-path.ts';

export interface RouteEndpoint<C> {
  /** Unique id: `collection METHOD /template`. */
  readonly id: string;
  readonly method: HttpMethod;
  readonly template: string;
  readonly permission: string;
  readonly collection: C;
  readonly paramNames: readonly string[];
}

interface TrieNode<E> {
  literal: Map<string, TrieNode<E>> | undefined;
  param: TrieNode<E> | undefined;
  methods: Map<string, E> | undefined;
}

function node<E>(): TrieNode<E> {
  return { literal: undefined, param: undefined, methods: undefined };
}

/** The endpoints of one collection, matched against the path relative to the collection's base path. */
export class EndpointMatcher<C, E extends RouteEndpoint<C> = RouteEndpoint<C>> {
  #root: TrieNode<E> = node();

  add(endpoint: E): void {
    let current = this.#root;
    const relative = endpoint.template;
    if (relative !== '/') {
      for (const segment of relative.slice(1).split('/')) {
        if (segment.startsWith('{')) {
          current = current.param ??= node();
        } else {
          const canonical = canonicalLiteral(segment);
          current.literal ??= new Map();
          let next = current.literal.get(canonical);
          if (!next) current.literal.set(canonical, (next = node()));
          current = next;
        }
      }
    }
    current.methods ??= new Map();
    current.methods.set(endpoint.method, endpoint);
  }

  /**
   * Finds the endpoint for `relativePath` (canonical, starting with '/'). Returns the endpoint and the raw
   * (still-encoded) parameter segments, `allow` when the path exists for other methods only, or undefined.
   */
  match(method: string, relativePath: string): EndpointMatch<C, E> | { allow: string[] } | undefined {
    const segments = relativePath === '/' ? [] : relativePath.slice(1).split('/');
    const params: string[] = [];
    const search: Search<E> = { method, pathOnly: undefined };
    const endpoint = walk(this.#root, segments, 0, params, search);
    if (endpoint) return { endpoint, params };
    const methods = search.pathOnly?.methods;
    if (!methods) return undefined;
    const allow = [...methods.keys()];
    if (methods.has('GET') && !methods.has('HEAD')) allow.push('HEAD');
    return { allow };
  }
}

interface Search<E> {
  method: string;
  /** The first node whose path matched but which lacks the method (for 405 + Allow). */
  pathOnly: TrieNode<E> | undefined;
}

export interface EndpointMatch<C, E extends RouteEndpoint<C> = RouteEndpoint<C>> {
  endpoint: E;
  /** Raw canonical segments, in template order; decode with `paramValues`. */
  params: string[];
}

/** Depth-first: literal before parameter; a branch whose leaf lacks the method is backtracked out of. */
function walk<E>(n: TrieNode<E>, segments: string[], i: number, params: string[], search: Search<E>): E | undefined {
  if (i === segments.length) {
    if (!n.methods) return undefined;
    const endpoint = n.methods.get(search.method) ?? (search.method === 'HEAD' ? n.methods.get('GET') : undefined);
    if (!endpoint) search.pathOnly ??= n;
    return endpoint;
  }
  const segment = segments[i]!;
  if (segment === '') return undefined; // trailing slash: templates never end with one
  const literal = n.literal?.get(segment);
  if (literal) {
    const found = walk(literal, segments, i + 1, params, search);
    if (found) return found;
  }
  if (n.param) {
    params.push(segment);
    const found = walk(n.param, segments, i + 1, params, search);
    if (found) return found;
    params.pop();
  }
  return undefined;
}

/** Decoded parameter values of a match, keyed by template name. */
export function paramValues<C>(match: { endpoint: RouteEndpoint<C>; params: string[] }): Record<string, string> {
  const out: Record<string, string> = {};
  match.endpoint.paramNames.forEach((name, i) => (out[name] = decodeSegment(match.params[i]!)));
  return out;
}

function canonicalLiteral(segment: string): string {
  const result = canonicalize(`/${segment}`, undefined);
  if (!result.ok) throw new Error(`template segment ${JSON.stringify(segment)} is not canonical: ${result.detail}`);
  return result.value.path.slice(1);
}

export interface RoutedCollection {
  readonly basePath: string;
  readonly baseDepth: number;
  readonly host: string | undefined;
}

/** Host and base-path lookup of collections. */
export class CollectionRouter<C extends RoutedCollection> {
  #exact = new Map<string, Map<string, C>>();
  #wildcard = new Map<string, Map<string, C>>();
  #any = new Map<string, C>();

  add(collection: C): void {
    let table = this.#any;
    const host = collection.host;
    if (host?.startsWith('*.')) table = getOrCreate(this.#wildcard, host.slice(1));
    else if (host) table = getOrCreate(this.#exact, host);
    table.set(collection.basePath, collection);
  }

  /** `hostname` is lower-case and without port. */
  match(hostname: string | undefined, path: string): C | undefined {
    if (hostname) {
      const exact = this.#exact.get(hostname);
      const hit = exact && longestPrefix(exact, path);
      if (hit) return hit;
      if (this.#wildcard.size > 0) {
        for (let dot = hostname.indexOf('.'); dot !== -1; dot = hostname.indexOf('.', dot + 1)) {
          const table = this.#wildcard.get(hostname.slice(dot));
          const found = table && longestPrefix(table, path);
          if (found) return found;
        }
      }
    }
    return longestPrefix(this.#any, path);
  }
}

function getOrCreate<K, V>(map: Map<K, Map<string, V>>, key: K): Map<string, V> {
  let inner = map.get(key);
  if (!inner) map.set(key, (inner = new Map()));
  return inner;
}

function longestPrefix<C>(table: Map<string, C>, path: string): C | undefined {
  if (table.size === 0) return undefined;
  let end = path.length;
  while (end > 0) {
    const hit = table.get(end === path.length ? path : path.slice(0, end));
    if (hit) return hit;
    end = path.lastIndexOf('/', end - 1);
  }
  return table.get('/');
}

/** Path relative to a collection's base path ('/' when equal). */
export function relativePath(basePath: string, path: string): string {
  if (basePath === '/') return path;
  return path.length === basePath.length ? '/' : path.slice(basePath.length);
}

export { segmentDepth };
