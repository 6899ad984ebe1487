/**
 * How every statement runs: through one `Run` function that the resource modules (`sql/*.ts`) are given. It maps
 * unique violations to `StoreConflictError`, and inside a transaction it makes a failed statement end the
 * transaction on both databases (PostgreSQL refuses further statements in an aborted transaction; SQLite would
 * carry on), so that code swallowing an error inside `transaction()` fails in tests on SQLite too.
 */
import type { Kysely } from 'kysely';
import type { Store } from '../store.ts';
import type { Database } from '../tables.ts';
import { toStoreError } from './conflicts.ts';

/** Runs one statement (or a few that belong together) against the store's database or open transaction. */
export type Run = <T>(query: (db: Kysely<Database>) => Promise<T>) => Promise<T>;

export class StatementRunner {
  readonly #db: Kysely<Database>;
  readonly #kind: Store['kind'];
  readonly #inTransaction: boolean;
  /** Inside a transaction: why it can run nothing more (it failed, or it ended). */
  #unusable: string | undefined;
  /** Inside a transaction: the error of a statement that failed, even if the callback caught it. */
  #failure: unknown;

  constructor(db: Kysely<Database>, kind: Store['kind'], inTransaction: boolean) {
    this.#db = db;
    this.#kind = kind;
    this.#inTransaction = inTransaction;
  }

  /** Every statement runs through here: checks the transaction is usable, maps errors, and poisons it on failure. */
  readonly run: Run = async (query) => {
    if (this.#unusable !== undefined)
      throw new Error(`store transaction ${this.#unusable}; nothing more can run in it`, { cause: this.#failure });
    try {
      return await query(this.#db);
    } catch (error) {
      const mapped = toStoreError(error, this.#kind);
      if (this.#inTransaction) {
        this.#unusable = `failed (${error instanceof Error ? error.message : String(error)})`;
        this.#failure = mapped;
      }
      throw mapped;
    }
  };

  /**
   * Called when the callback returned: a transaction in which a statement failed must not commit, even if the
   * callback caught the error (PostgreSQL would silently roll back; SQLite would commit the rest).
   */
  settle(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Called when the transaction commits or rolls back. */
  end(): void {
    if (this.#inTransaction) this.#unusable ??= 'has ended';
  }
}
