import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandHelp, nounHelp, nouns, topHelp, unknownCommand } from './help.ts';
import { allCommands } from './registry.ts';

describe('help', () => {
  it('every command has help with its usage, a one-line summary, an example and the exit codes', async () => {
    const entries = await allCommands();
    assert.ok(entries.length > 50, String(entries.length));
    for (const entry of entries) {
      const text = await commandHelp(entry);
      assert.ok(text.startsWith(`Usage: gatehouse ${entry.name}`), `${entry.name}:\n${text}`);
      assert.match(text, /^Examples:\n {2}\S*.*gatehouse /m, `${entry.name} has no example`);
      assert.match(text, /^Exit codes: 0 done; 1 failure .*; 2 usage /m, entry.name);
      if (entry.kind === 'admin') {
        assert.match(text, /^ {2}-o, --output table\|json +/m, entry.name);
        for (const f of entry.command.flags)
          assert.match(text, new RegExp(`(--|\\])${f.name} `), `${entry.name}: --${f.name}`);
      }
    }
  });

  it('lists every command at the top and under its noun', async () => {
    const entries = await allCommands();
    const top = topHelp(entries);
    for (const e of entries) assert.ok(top.includes(`  ${e.name} `), e.name);
    for (const noun of nouns(entries)) {
      const text = nounHelp(noun, entries);
      for (const e of entries.filter((x) => x.name.split(' ')[0] === noun)) assert.ok(text.includes(e.name));
    }
  });

  it('answers a mistyped command with the nearest one', async () => {
    const entries = await allCommands();
    assert.match(
      unknownCommand(['client', 'creat'], entries),
      /^unknown command "client creat": did you mean "client create"\?/,
    );
    assert.match(unknownCommand(['rol', 'list'], entries), /^unknown command "rol list": did you mean "role list"\?/);
    assert.match(unknownCommand(['frobnicate'], entries), /^unknown command "frobnicate"\nUsage: gatehouse <command>/);
  });
});
