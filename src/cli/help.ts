/**
 * `gatehouse help [<noun> [<verb>]]`, `gatehouse <noun> --help`, `gatehouse <noun> <verb> --help`: every command
 * with a one-line summary, its arguments and options, and at least one example; and the suggestions for a
 * mistyped command.
 */
import { CONNECTION_HELP } from './admin-client.ts';
import { type AdminCommand, flagSynopsis } from './admin/commands.ts';
import { suggest } from './command.ts';
import { heading } from './output.ts';
import { type Entry, nounOf } from './registry.ts';

/** A summary as a sentence. */
const sentence = (summary: string) => `${summary[0]!.toUpperCase()}${summary.slice(1)}.`;

export const EXIT_CODES =
  'Exit codes: 0 done; 1 failure (the control plane or the command failed: not your mistake); 2 usage (a mistake to fix: a bad command, flag, file or value, or a request the admin API refused).';

const OUTPUT_ROW: [string, string] = [
  '-o, --output table|json',
  'a table or lines for people (default), or the JSON answer for scripts (--json is the same)',
];

export function nouns(entries: readonly Entry[]): string[] {
  return [...new Set(entries.map((e) => nounOf(e.name)))];
}

export function topHelp(entries: readonly Entry[]): string {
  const width = Math.max(...entries.map((e) => e.name.length)) + 2;
  const lines = ['gatehouse — API gateway', '', 'Usage: gatehouse <command> [options]', ''];
  const maintainer = (e: Entry) => e.kind === 'local' && e.maintainer === true;
  const users = entries.filter((e) => !maintainer(e));
  for (const noun of nouns(users)) {
    for (const e of users.filter((x) => nounOf(x.name) === noun)) lines.push(`  ${e.name.padEnd(width)}${e.summary}`);
  }
  const own = entries.filter(maintainer);
  if (own.length > 0) {
    lines.push('', heading("Maintainer commands (Gatehouse's own docs, generated from the code):"));
    for (const e of own) lines.push(`  ${e.name.padEnd(width)}${e.summary}`);
  }
  lines.push(
    '',
    "Run 'gatehouse help <noun>' (or 'gatehouse <noun> --help') for a noun's commands, and",
    "'gatehouse <noun> <verb> --help' for a command's options and examples.",
    '',
    EXIT_CODES,
  );
  return lines.join('\n');
}

export function nounHelp(noun: string, entries: readonly Entry[]): string {
  const mine = entries.filter((e) => nounOf(e.name) === noun);
  const width = Math.max(...mine.map((e) => e.name.length)) + 2;
  return [
    `Usage: gatehouse ${noun} <verb> [options]`,
    '',
    ...mine.map((e) => `  ${e.name.padEnd(width)}${e.summary}`),
    '',
    `Run 'gatehouse ${noun} <verb> --help' for a command's options and examples.`,
  ].join('\n');
}

/** The usage line of an admin command: `client delete ID [options]`. */
export function adminUsage(c: AdminCommand): string {
  const args = c.positionals.map((p) => (p.required ? p.display : `[${p.display}]`));
  const required = c.flags.filter((f) => f.required).map(flagSynopsis);
  return [c.name, ...args, ...required, '[options]'].join(' ');
}

/** Option rows of an admin command: flag, what it is (required or not). */
export function adminOptionRows(c: AdminCommand): [string, string][] {
  return [
    ...c.positionals.map((p): [string, string] => [p.display, `${p.help}${p.required ? '' : ' (optional)'}`]),
    ...c.flags.map((f): [string, string] => [
      flagSynopsis(f),
      `${f.help}${f.kind === 'boolean' ? ` (--no-${f.name}: false)` : ''}${f.required ? ' (required)' : ''}`,
    ]),
    OUTPUT_ROW,
  ];
}

export function adminHelp(c: AdminCommand): string {
  const rows = adminOptionRows(c);
  const width = Math.min(36, Math.max(...rows.map(([flag]) => flag.length))) + 2;
  const op = c.operation;
  return [
    `Usage: gatehouse ${adminUsage(c)}`,
    '',
    sentence(c.summary),
    `Admin API: ${op.method} ${op.path} — permission: ${c.permission}`,
    '',
    heading('Options:'),
    ...rows.map(([flag, help]) =>
      flag.length + 2 > width ? `  ${flag}\n  ${''.padEnd(width)}${help}` : `  ${flag.padEnd(width)}${help}`,
    ),
    ...(c.notes ? ['', c.notes] : []),
    '',
    heading('Examples:'),
    ...c.examples.map((e) => `  ${e}`),
    '',
    CONNECTION_HELP,
    '',
    EXIT_CODES,
  ].join('\n');
}

export async function commandHelp(entry: Entry): Promise<string> {
  if (entry.kind === 'admin') return adminHelp(entry.command);
  const command = await entry.load();
  return [
    `Usage: gatehouse ${entry.name} ${command.usage}`,
    '',
    sentence(entry.summary),
    '',
    heading('Examples:'),
    ...entry.examples.map((e) => `  ${e}`),
    '',
    EXIT_CODES,
  ].join('\n');
}

/** `unknown command "client lst": did you mean "client list"?` and where to look. */
export function unknownCommand(words: readonly string[], entries: readonly Entry[]): string {
  const typed = words.join(' ');
  const noun = words[0] ?? '';
  const known = nouns(entries);
  if (known.includes(noun)) {
    const verbs = entries.filter((e) => nounOf(e.name) === noun).map((e) => e.name);
    const near = suggest(typed, verbs);
    return `unknown command "${typed}"${near ? `: did you mean "${near}"?` : ''}\n\n${nounHelp(noun, entries)}`;
  }
  const nearNoun = suggest(noun, known);
  const corrected = nearNoun && words[1] !== undefined ? `${nearNoun} ${words[1]}` : undefined;
  const near =
    (corrected && entries.some((e) => e.name === corrected) ? corrected : nearNoun) ??
    suggest(
      typed,
      entries.map((e) => e.name),
    );
  return `unknown command "${typed}"${near ? `: did you mean "${near}"?` : ''}\nUsage: gatehouse <command> [options]; 'gatehouse help' lists the commands.`;
}
