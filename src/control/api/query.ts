/**
 * Query parameters of admin operations: an operation declares the ones it reads as a zod object of string-valued
 * fields (`Operation.query`); the server checks the request's query string against it before the handler runs (an
 * unknown, repeated or malformed parameter is a 400 naming it), and the OpenAPI document lists them as
 * `in: query` parameters (openapi.ts), from which the console's client and the CLI's flags are typed.
 *
 * The handler still reads `query` as URLSearchParams: what reaches it has passed the schema. An empty value
 * (`?limit=`) counts as absent: the handler does not see it.
 */
import { z } from 'zod';
import { parseDuration } from '../../config/duration.ts';
import { AdminError, fromZod } from './errors.ts';

/** A positive integer up to `max`. */
export function queryInt(max: number, description: string, min = 1) {
  const message = `must be an integer from ${min} to ${max}`;
  return z.coerce
    .number({ error: message })
    .int({ error: message })
    .min(min, { error: message })
    .max(max, { error: message })
    .optional()
    .describe(description);
}

/** `true` or `false` (a boolean in the OpenAPI document, so that clients send it as one). */
export function queryBoolean(description: string) {
  return z
    .stringbool({ truthy: ['true'], falsy: ['false'], error: 'must be "true" or "false"' })
    .meta({ type: 'boolean' })
    .optional()
    .describe(description);
}

/** An ISO 8601 time or a duration back from now (`15m`, `24h`, `7d`). */
export function queryTime(description: string) {
  return z
    .string()
    .refine((v) => parseDuration(v) !== undefined || (/^\d{4}-\d{2}-\d{2}T/.test(v) && !Number.isNaN(Date.parse(v))), {
      error: 'must be an ISO 8601 timestamp or a duration such as "15m", "24h" or "7d"',
    })
    .optional()
    .describe(description);
}

/** Free text (a name, an id). */
export function queryText(description: string) {
  return z.string().max(500).optional().describe(description);
}

/** The gateway filter every telemetry and analytics operation takes. */
export const GATEWAY_QUERY = queryText('Only this gateway: an edge gateway name or id, or `cloud`');

/**
 * The request's query string checked against `schema` (undefined: the operation takes none), without its empty
 * values. Throws a 400 that names every bad parameter.
 */
export function checkQuery(params: URLSearchParams, schema: z.ZodObject | undefined): URLSearchParams {
  const values: Record<string, string> = {};
  const problems: { path: string; message: string }[] = [];
  const known = schema ? Object.keys(schema.shape) : [];
  const takes = known.length ? `this operation takes ${known.join(', ')}` : 'this operation takes none';
  for (const name of new Set(params.keys())) {
    const all = params.getAll(name);
    if (!known.includes(name)) problems.push({ path: `query.${name}`, message: `unknown query parameter; ${takes}` });
    else if (all.length > 1)
      problems.push({ path: `query.${name}`, message: `given ${all.length} times; give it once` });
    else if (all[0] !== '') values[name] = all[0]!;
  }
  if (problems.length)
    throw new AdminError(
      'GH_ERR_ADMIN_INVALID_BODY',
      problems.map((p) => `${p.path}: ${p.message}`).join('; '),
      problems,
    );
  if (schema) {
    const parsed = schema.safeParse(values);
    if (!parsed.success) throw fromZod('query', parsed.error);
  }
  return new URLSearchParams(values);
}
