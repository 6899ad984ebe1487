// autocannon ships no types; this is the small part bench/lib/autocannon-run.ts uses.
declare module 'autocannon' {
  interface Histogram {
    average: number;
    max: number;
    p50: number;
    p90: number;
    p99: number;
    p99_9: number;
  }
  interface Options {
    url: string;
    duration: number;
    connections: number;
    headers?: Record<string, string>;
    overallRate?: number;
    method?: string;
    body?: string;
  }
  interface Result {
    '2xx': number;
    non2xx: number;
    errors: number;
    timeouts: number;
    duration: number;
    latency: Histogram;
    requests: Histogram & { total: number };
  }
  export default function autocannon(options: Options): Promise<Result>;
}
