/** Installation settings in SQL: one key/value row each. */
import type { SettingOps } from '../store.ts';
import type { Run } from './statement-runner.ts';

export function settingQueries(run: Run): SettingOps {
  return {
    async getSetting(key: string): Promise<string | undefined> {
      const row = await run((db) =>
        db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst(),
      );
      return row?.value;
    },

    async setSetting(key: string, value: string): Promise<void> {
      await run((db) =>
        db
          .insertInto('settings')
          .values({ key, value })
          .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
          .execute(),
      );
    },
  };
}
