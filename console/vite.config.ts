/**
 * Builds the web console into console/dist/ (served by the control plane at /console/). JSX is compiled for Preact
 * by Vite's own transformer (no Babel preset). The build prints the gzipped size of the JavaScript the first page
 * loads and fails when it is over FIRST_PAGE_LIMIT_BYTES, so a heavy dependency cannot slip in unnoticed.
 */
import { gzipSync } from 'node:zlib';
import { defineConfig, type Plugin } from 'vite';

const FIRST_PAGE_LIMIT_BYTES = 200 * 1024;

function firstPageBudget(): Plugin {
  return {
    name: 'gatehouse-first-page-budget',
    apply: 'build',
    generateBundle(_options, bundle) {
      const chunks = new Map<string, { code: string; imports: string[]; isEntry: boolean }>();
      for (const [name, out] of Object.entries(bundle))
        if (out.type === 'chunk') chunks.set(name, { code: out.code, imports: out.imports, isEntry: out.isEntry });
      // The first page loads the entry chunk and its static imports (dynamic imports load with their page).
      const seen = new Set<string>();
      const visit = (name: string) => {
        if (seen.has(name)) return;
        seen.add(name);
        for (const i of chunks.get(name)?.imports ?? []) visit(i);
      };
      for (const [name, c] of chunks) if (c.isEntry) visit(name);
      let total = 0;
      for (const name of seen) total += gzipSync(chunks.get(name)!.code).length;
      const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
      console.log(
        `\nconsole: first page JavaScript ${kb(total)} gzipped in ${seen.size} file(s) (budget ${kb(FIRST_PAGE_LIMIT_BYTES)})`,
      );
      if (total > FIRST_PAGE_LIMIT_BYTES)
        this.error(
          `the first page's JavaScript is ${kb(total)} gzipped, over the ${kb(FIRST_PAGE_LIMIT_BYTES)} budget`,
        );
    },
  };
}

export default defineConfig({
  root: import.meta.dirname,
  base: '/console/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The polyfill would be a script of its own; every browser the console supports has modulepreload.
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
    target: 'es2022',
  },
  plugins: [firstPageBudget()],
});
