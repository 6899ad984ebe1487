/**
 * `gatehouse user create`: adds a console user (who signs in to the web console at /console/) with a generated
 * password, printed once (the control plane keeps only its hash). On a first start, run it with the installation
 * admin token that `npm start` printed.
 */
import { randomBytes } from 'node:crypto';
import { UserInputSchema, type UserResource } from '../config/resources.ts';
import { adminCommand, connect, jsonOutput } from './admin-client.ts';
import { printJson } from './output.ts';
import { UsageError } from './command.ts';

const NAME = 'user create';

export const userCreate = adminCommand({
  name: NAME,
  args: `--email EMAIL [--role admin|ROLE] [--name NAME]`,
  help: `Adds a console user with a role (default admin: every privilege) and prints a generated password once.
Sign in at <admin URL>/console/ with the workspace, the email and that password.`,
  options: {
    email: { type: 'string' },
    role: { type: 'string', default: 'admin' },
    name: { type: 'string' },
  },
  async run(values) {
    if (values.email === undefined) throw new UsageError(`${NAME}: --email is required (the user's sign-in email)`);
    const json = jsonOutput(NAME, values);
    const password = randomBytes(18).toString('base64url');
    const parsed = UserInputSchema.safeParse({ email: values.email, role: values.role, name: values.name, password });
    if (!parsed.success)
      throw new UsageError(
        `${NAME}: ${parsed.error.issues.map((i) => `--${String(i.path[0] ?? 'input')}: ${i.message}`).join('; ')}`,
      );
    const body = parsed.data;
    const api = connect(NAME, values);
    // Console users are managed in the workspace's development environment.
    const ws = await api.request<{ devEnvironment: string }>('GET', await api.workspacePath(), undefined, {
      devEnvironment: 'string',
    });
    const user = await api.request<UserResource>(
      'POST',
      await api.workspacePath('environments', ws.devEnvironment, 'collaborators'),
      body,
      { id: 'string', email: 'string' },
    );
    if (json) {
      printJson({ ...user, password });
      return 0;
    }
    console.log(`Created console user ${user.email} (role ${user.role}) in workspace ${await api.workspace()}.
Sign in at ${api.shownUrl}/console/ with
  workspace  ${await api.workspace()}
  email      ${user.email}
  password   ${password}
The password is shown this once (only its hash is stored).`);
    return 0;
  },
});
