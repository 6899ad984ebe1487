/**
 * What every table's row mapping shares: optional fields are NULL in the table and absent from records, and
 * JSON-shaped fields are JSON text.
 */

/** Adds each optional field whose column is not NULL, so that absent fields stay absent (deep-equal round trips). */
export function withOptional<T extends object, O extends Record<string, unknown>>(
  record: T,
  optional: O,
): T & { [K in keyof O]?: NonNullable<O[K]> } {
  const out: Record<string, unknown> = record as Record<string, unknown>;
  for (const [key, value] of Object.entries(optional)) if (value !== null && value !== undefined) out[key] = value;
  return out as T & { [K in keyof O]?: NonNullable<O[K]> };
}

/** A value as JSON text for its column; an absent optional value as NULL. */
export function json(value: unknown): string;
export function json(value: unknown | undefined): string | null;
export function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

/** A JSON column read back; NULL as absent. */
export function parsed<T>(text: string | null): T | undefined {
  return text === null ? undefined : (JSON.parse(text) as T);
}
