/**
 * Reading the declarative gateway config file (YAML or JSON). Every problem is reported as a `ConfigError`
 * that says what and where (file, field path, line when the parser knows it); nothing half-valid is returned.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseDocument } from 'yaml';
import { formatIssues, GatewayFileSchema, type GatewayFile } from './schema.ts';

/** A mistake in user input: printed without a stack trace (exit code 2 from the CLI). */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export async function loadGatewayFile(file: string): Promise<GatewayFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${file}: cannot read the config file (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return parseGatewayFile(text, file);
}

export function parseGatewayFile(text: string, file: string): GatewayFile {
  const data = parseConfigText(text, file);
  const result = GatewayFileSchema.safeParse(data);
  if (!result.success) throw new ConfigError(`${file}: invalid configuration\n${indent(formatIssues(result.error))}`);
  return result.data;
}

/** Parses a config file's text: JSON for `.json`, YAML otherwise; a ConfigError says where it is wrong. */
export function parseConfigText(text: string, file: string): unknown {
  const ext = extname(file).toLowerCase();
  if (ext === '.json') {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new ConfigError(`${file}: invalid JSON: ${(error as Error).message}`);
    }
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const where = first.linePos?.[0] ? `line ${first.linePos[0].line}, column ${first.linePos[0].col}` : 'unknown position';
    const message = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(`${file}: invalid YAML at ${where}: ${message}`);
  }
  return doc.toJS({ maxAliasCount: 1000 });
}

function indent(text: string): string {
  return text.split('\n').map((l) => `  ${l}`).join('\n');
}
