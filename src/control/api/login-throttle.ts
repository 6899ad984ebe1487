/**
 * Password login throttling: failed attempts are counted per account (workspace + email) and per client address
 * over a sliding quarter hour, and scrypt runs at most a few at a time (each takes 16 MiB and a libuv thread, so
 * a flood of logins must not starve the rest of the process). In memory: one control-plane process's view.
 */
const WINDOW_MS = 15 * 60_000;
const MAX_PER_ACCOUNT = 10;
const MAX_PER_ADDRESS = 50;
const MAX_CONCURRENT = 4;
const MAX_QUEUED = 64;

export class LoginThrottle {
  readonly #failures = new Map<string, number[]>();
  #running = 0;
  readonly #queue: (() => void)[] = [];

  /** Milliseconds until another attempt is allowed, or undefined when it is allowed now. */
  blocked(account: string, address: string, now: number): number | undefined {
    const waits = [
      this.#wait(`a\0${account}`, MAX_PER_ACCOUNT, now),
      this.#wait(`i\0${address}`, MAX_PER_ADDRESS, now),
    ].filter((w) => w !== undefined);
    return waits.length ? Math.max(...waits) : undefined;
  }

  failed(account: string, address: string, now: number): void {
    for (const key of [`a\0${account}`, `i\0${address}`]) {
      const list = (this.#failures.get(key) ?? []).filter((t) => t > now - WINDOW_MS);
      list.push(now);
      this.#failures.set(key, list);
    }
    if (this.#failures.size > 100_000) this.#sweep(now);
  }

  succeeded(account: string): void {
    this.#failures.delete(`a\0${account}`);
  }

  /** Runs a password verification when a slot is free. */
  async verify<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#running >= MAX_CONCURRENT) {
      if (this.#queue.length >= MAX_QUEUED) throw new Error('login verification queue is full');
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    }
    this.#running++;
    try {
      return await fn();
    } finally {
      this.#running--;
      this.#queue.shift()?.();
    }
  }

  #wait(key: string, max: number, now: number): number | undefined {
    const recent = (this.#failures.get(key) ?? []).filter((t) => t > now - WINDOW_MS);
    if (recent.length < max) return undefined;
    return recent[recent.length - max]! + WINDOW_MS - now;
  }

  #sweep(now: number): void {
    for (const [key, list] of this.#failures) if (!list.some((t) => t > now - WINDOW_MS)) this.#failures.delete(key);
  }
}
