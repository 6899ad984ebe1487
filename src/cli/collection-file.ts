/**
 * Reading the files of `-f FILE` (an admin command's body) and `collection apply -f`: YAML, or JSON when the name ends in
 * `.json`; `-` reads standard input (as YAML, which JSON is a subset of). Every problem is a `ConfigError` (exit 2)
 * that names the file and the field path: `apply.yaml: collections[1].basePath: must be "/" or …`.
 */
import type { z } from 'zod';
import { ConfigError, MAX_CONFIG_BYTES, parseConfigText, readConfigFile } from '../config/load.ts';
import { formatIssues } from '../config/schema.ts';

export interface LoadedFile<T> {
  /** As written: what is sent to the admin API (durations in the units the file used). */
  raw: unknown;
  /** As the schema reads it (defaults applied, durations in milliseconds): what is compared. */
  value: T;
}

export async function loadFile<S extends z.ZodType>(file: string, schema: S): Promise<LoadedFile<z.output<S>>> {
  const raw = await readDocument(file);
  const result = schema.safeParse(raw);
  if (!result.success)
    throw new ConfigError(
      formatIssues(result.error)
        .split('\n')
        .map((line) => `${file}: ${line}`)
        .join('\n'),
    );
  return { raw, value: result.data };
}

/** The document in a file (or stdin for "-"), parsed but not checked against any schema. */
export async function readDocument(file: string): Promise<unknown> {
  let text: string;
  if (file === '-') {
    try {
      text = await readStdin();
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw new ConfigError(
        `${file}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      );
    }
  } else {
    // Regular files only, within the config size limit (a device or a huge file is refused before it is read).
    text = await readConfigFile(file);
  }
  return parseConfigText(text, file);
}

/** Standard input, up to the config size limit (beyond it the read stops with a ConfigError). */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_CONFIG_BYTES)
      throw new ConfigError(
        `-: standard input is over the ${MAX_CONFIG_BYTES / 1024 / 1024} MB limit for a config file`,
      );
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
