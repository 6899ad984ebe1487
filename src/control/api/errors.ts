/**
 * Admin API errors: the `GH_ERR_ADMIN_*` codes of the one error table (src/shared/errors.ts), thrown by
 * handlers as `AdminError` and written as problem+json by the server. Validation failures carry every problem as
 * `{ path, message }` with the path rooted at `body`, `query` or `path`.
 */
import type { z } from 'zod';
import { formatPath } from '../../config/schema.ts';
import { StoreConflictError } from '../store/store.ts';
import type { ErrorCode } from '../../shared/errors.ts';

export interface FieldProblem {
  path: string;
  message: string;
  /** Where in an uploaded document (an OpenAPI import): JSON pointer, and line and column of its text. */
  pointer?: string;
  line?: number;
  column?: number;
}

export class AdminError extends Error {
  override readonly name = 'AdminError';
  readonly code: ErrorCode;
  readonly errors: FieldProblem[] | undefined;
  /** Extra response headers, e.g. `retry-after`. */
  readonly headers: Readonly<Record<string, string>>;
  /** Extra members of the problem document (e.g. `clients` of GH_ERR_ADMIN_ROLE_IN_USE). */
  readonly extensions: Readonly<Record<string, unknown>>;
  constructor(
    code: ErrorCode,
    detail: string,
    errors?: FieldProblem[],
    headers: Record<string, string> = {},
    extensions: Record<string, unknown> = {},
  ) {
    super(detail);
    this.code = code;
    this.errors = errors;
    this.headers = headers;
    this.extensions = extensions;
  }
}

export function notFound(what: string): AdminError {
  return new AdminError('GH_ERR_ADMIN_NOT_FOUND', `${what} not found`);
}

export function conflict(detail: string): AdminError {
  return new AdminError('GH_ERR_ADMIN_CONFLICT', detail);
}

/** A single-field validation problem, e.g. `invalid('body.role', 'unknown role "x"')`. */
export function invalid(path: string, message: string): AdminError {
  return new AdminError('GH_ERR_ADMIN_INVALID_BODY', `${path}: ${message}`, [{ path, message }]);
}

export function fromZod(root: string, error: z.ZodError): AdminError {
  const errors = error.issues.map((i) => {
    const p = formatPath(i.path);
    return { path: p === '' ? root : p.startsWith('[') ? root + p : `${root}.${p}`, message: i.message };
  });
  const detail =
    errors
      .slice(0, 5)
      .map((e) => `${e.path}: ${e.message}`)
      .join('; ') + (errors.length > 5 ? `; … and ${errors.length - 5} more` : '');
  return new AdminError('GH_ERR_ADMIN_INVALID_BODY', detail, errors);
}

/** Store uniqueness violations become 409s that say which name is taken. */
export function fromStore(error: unknown, names: Record<string, string> = {}): unknown {
  if (!(error instanceof StoreConflictError)) return error;
  return conflict(names[error.constraint] ?? `${error.constraint.replace('.', ' ')} is already taken`);
}
