/**
 * Loaded with `node --import` into a child process: records every module the process loads (module.registerHooks
 * sees static and dynamic imports alike) and, when the process exits, writes their URLs, one a line, to the file
 * named by GATEHOUSE_MODULE_TRACE. Used to check which code a command loads.
 */
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const out = process.env.GATEHOUSE_MODULE_TRACE;
const loaded = new Set<string>();
registerHooks({
  load(url, context, nextLoad) {
    loaded.add(url);
    return nextLoad(url, context);
  },
});
process.on('exit', () => {
  if (out) writeFileSync(out, [...loaded].join('\n'));
});
