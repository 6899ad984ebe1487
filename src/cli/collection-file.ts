/**
 * Reading the files of `collection create -f` and `collection apply -f`: YAML, or JSON when the name ends in
 * `.json`; `-` reads standard input (as YAML, which JSON is a subset of). Every problem is a `ConfigError` (exit 2)
 * that names the file and the field path: `apply.yaml: collections[1].basePath: must be "/" or …`.
 */
import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { ConfigError, parseConfigText } from '../config/load.ts';
import { formatIssues } from '../config/schema.ts';

export interface LoadedFile<T> {
  /** As written: what is sent to the admin API (durations in the units the file used). */
  raw: unknown;
  /** As the schema reads it (defaults applied, durations in milliseconds): what is compared. */
  value: T;
}

export async function loadFile<S extends z.ZodType>(file: string, schema: S): Promise<LoadedFile<z.output<S>>> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${file}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const raw = parseConfigText(text, file);
  const result = schema.safeParse(raw);
  if (!result.success) throw new ConfigError(formatIssues(result.error).split('\n').map((line) => `${file}: ${line}`).join('\n'));
  return { raw, value: result.data };
}


async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}
