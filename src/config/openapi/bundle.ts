/**
 * Bundling a multi-file OpenAPI document into one (what the CLI uploads and what a config file's `openapi:` names):
 * relative-file `$ref`s are read from disk and embedded under `x-ext` with internal references to them
 * (@scalar/json-magic's bundler). URLs are not fetched: a spec that needs the network is refused by name.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { bundleWithDiagnostics } from '@scalar/json-magic/bundle';
import { parseJson, parseYaml, readFiles } from '@scalar/json-magic/bundle/plugins/node';
import { parseSpecText, type SpecProblem } from './source.ts';

export type BundledSpec =
  | {
      ok: true;
      /** The entry file's text when it had no external references, so that problems get its lines. */ text?: string;
      document: object;
    }
  | { ok: false; problems: SpecProblem[] };

/** Reads `file` and, when it references other files, bundles them into one document. */
export async function bundleSpecFile(file: string): Promise<BundledSpec> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return { ok: false, problems: [{ pointer: '', message: `cannot read ${file}: ${(error as Error).message}` }] };
  }
  const parsed = parseSpecText(text);
  if (!parsed.ok) return parsed;
  const document = parsed.document;
  if (document === null || typeof document !== 'object')
    return { ok: false, problems: [{ pointer: '', message: `${file} is not an OpenAPI document` }] };
  const external = externalRefs(document);
  if (external.length === 0) return { ok: true, text, document };
  const remote = external.filter((e) => /^[a-z][a-z0-9+.-]*:/i.test(e.ref));
  if (remote.length > 0)
    return {
      ok: false,
      problems: remote.map((e) => ({
        pointer: e.pointer,
        message: `reference "${e.ref}" is a URL: only files relative to ${file} are bundled (download it next to the spec)`,
      })),
    };
  const result = await bundleWithDiagnostics(structuredClone(document) as Record<string, unknown>, {
    plugins: [readFiles(), parseYaml(), parseJson()],
    treeShake: false,
    origin: path,
  });
  if (result.diagnostics.length > 0)
    return {
      ok: false,
      problems: result.diagnostics.map((d) => ({
        pointer: d.pointer.replace(/^#/, ''),
        message:
          d.kind === 'missing-target'
            ? `reference "${d.reference}" points at nothing in ${d.source}`
            : `reference "${d.reference}" could not be read (relative to ${dirname(d.source || path)})`,
      })),
    };
  return { ok: true, document: result.document as object };
}

/** The `$ref`s of `document` that name another file or a URL. */
function externalRefs(document: object): { ref: string; pointer: string }[] {
  const out: { ref: string; pointer: string }[] = [];
  const stack: [unknown, string][] = [[document, '']];
  while (stack.length > 0) {
    const [value, pointer] = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    for (const [k, v] of Object.entries(value)) {
      const at = `${pointer}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      if (k === '$ref' && typeof v === 'string' && !v.startsWith('#')) out.push({ ref: v, pointer: at });
      else stack.push([v, at]);
    }
  }
  return out;
}
