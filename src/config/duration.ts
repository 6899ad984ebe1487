const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration into whole milliseconds (at least 1): a number of seconds, or "250ms", "30s", "5m", "2h", "7d". */
export function parseDuration(value: number | string): number | undefined {
  if (typeof value === 'number')
    return Number.isFinite(value) && value * 1000 >= 1 ? Math.round(value * 1000) : undefined;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim());
  if (!match) return undefined;
  const ms = Math.round(Number(match[1]) * UNITS[match[2]!]!);
  return ms >= 1 ? ms : undefined;
}

/** Formats milliseconds the way the config accepts them ("90s", "5m"). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
