/**
 * Load that tries to exceed a limit across several gateways, for the exact-limits tests and benchmark: a burst
 * (every request sent at once) or a paced load (one request every 1/rate s, round-robin over the gateways, sent
 * whether or not earlier ones were answered). Counts the answers by status.
 */
import { Agent, request } from 'undici';

export interface LoadCount {
  /** Answers by status code. */
  statuses: Map<number, number>;
  /** 2xx answers. */
  admitted: number;
}

const agent = new Agent({ connections: 64, pipelining: 1 });

async function send(url: string, headers: Record<string, string>, count: LoadCount): Promise<void> {
  const res = await request(url, { dispatcher: agent, headers });
  await res.body.dump();
  count.statuses.set(res.statusCode, (count.statuses.get(res.statusCode) ?? 0) + 1);
  if (res.statusCode >= 200 && res.statusCode < 300) count.admitted++;
}

/** `n` requests sent at once, spread round-robin over `urls`. */
export async function burst(urls: readonly string[], n: number, headers: Record<string, string>): Promise<LoadCount> {
  const count: LoadCount = { statuses: new Map(), admitted: 0 };
  await Promise.all(Array.from({ length: n }, (_, i) => send(urls[i % urls.length]!, headers, count)));
  return count;
}

/** `n` requests at `rate` per second (open loop), round-robin over `urls`. */
export async function paced(
  urls: readonly string[],
  rate: number,
  n: number,
  headers: Record<string, string>,
): Promise<LoadCount> {
  const count: LoadCount = { statuses: new Map(), admitted: 0 };
  const sent: Promise<void>[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    sent.push(send(urls[i % urls.length]!, headers, count));
  }
  await Promise.all(sent);
  return count;
}

export function closeLoad(): Promise<void> {
  return agent.close();
}
