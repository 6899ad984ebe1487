/**
 * How commands print. Colour only where it helps and only on a terminal: node's own `util.styleText` checks that
 * the stream is a TTY and honours NO_COLOR, NODE_DISABLE_COLORS and FORCE_COLOR, so piped output and scripts get
 * plain text. Progress lines go to standard error, on a terminal only, and are erased before the result prints.
 */
import { styleText } from 'node:util';

/** A table header or field name: bold on a terminal. */
export function heading(text: string): string {
  return styleText('bold', text, { stream: process.stdout });
}

/** The `gatehouse:` prefix of an error: red on a terminal. */
export function errorPrefix(): string {
  return styleText(['bold', 'red'], 'gatehouse:', { stream: process.stderr });
}

/** A plain text table: upper-case headers, columns padded to their widest cell. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [heading(line(headers.map((h) => h.toUpperCase()))), ...rows.map(line)].join('\n');
}

/** Prints a value for scripts (`--output json`). */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

export interface Progress {
  /** Shows `[done/total] text` in place of the previous line. */
  step(text: string): void;
  /** Erases the line. */
  done(): void;
}

/** A progress line on standard error when it is a terminal (and NO_COLOR-style plain output is not asked for). */
export function progress(total: number, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY || process.env.CI) return { step() {}, done() {} };
  let count = 0;
  return {
    step(text) {
      count += 1;
      const line = `[${Math.min(count, total)}/${total}] ${text}`;
      stream.write(`\r\x1b[2K${line.slice(0, Math.max(20, (stream.columns ?? 80) - 1))}`);
    },
    done() {
      stream.write('\r\x1b[2K');
    },
  };
}
