/** Loads data for a page: loading, error (with the server's message) and ready states, and a reload. */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

export type Loaded<T> =
  | { state: 'loading'; data?: T; error?: undefined; reload: () => void }
  | { state: 'error'; data?: T; error: string; reload: () => void }
  | { state: 'ready'; data: T; error?: undefined; reload: () => void };

export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [result, setResult] = useState<{ state: 'loading' | 'error' | 'ready'; data?: T; error?: string }>({
    state: 'loading',
  });
  const generation = useRef(0);
  const run = useCallback(() => {
    const mine = ++generation.current;
    setResult((r) => ({ state: 'loading', data: r.data }));
    load().then(
      (data) => mine === generation.current && setResult({ state: 'ready', data }),
      (e: unknown) =>
        mine === generation.current &&
        setResult((r) => ({ state: 'error', data: r.data, error: e instanceof Error ? e.message : String(e) })),
    );
  }, deps);
  useEffect(run, [run]);
  return { ...result, reload: run } as Loaded<T>;
}
