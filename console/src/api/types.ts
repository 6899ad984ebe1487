/** Response and body types of admin operations, by operation id, taken from the generated schema. */
import type { operations } from './schema';

type Json<R> = R extends { content: { 'application/json': infer T } } ? T : never;
type Responses<Op extends keyof operations> = operations[Op]['responses'];

/** The JSON of an operation's success response (200 or 201). */
export type Ok<Op extends keyof operations> = Json<Responses<Op>[keyof Responses<Op> & (200 | 201)]>;

/** The JSON body an operation takes. */
export type BodyOf<Op extends keyof operations> = operations[Op] extends {
  requestBody?: { content: { 'application/json': infer B } };
}
  ? B
  : never;
