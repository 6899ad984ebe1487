/**
 * Browser-test helpers for the web console: a real control plane on loopback ephemeral ports (the console served at
 * /console/ on its admin port) with a console user, Debian's Chromium driven by playwright-core, a screenshot per
 * page under test-results/console/, and a record of Content-Security-Policy violations and page errors (a test
 * asserts there are none). Everything a test starts stops in its `after` hook.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { REPO_ROOT } from '../helpers.ts';
import { startControlPlane, type ControlProcess } from '../control-helpers.ts';

export const CHROMIUM = process.env.GATEHOUSE_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOTS = join(REPO_ROOT, 'test-results/console');
export const PASSWORD = 'correct horse battery staple';

export interface ConsoleEnv {
  plane: ControlProcess;
  browser: Browser;
  /** `http://127.0.0.1:<admin port>/console/` */
  url: string;
  /** Problems the pages reported: CSP violations, uncaught errors. */
  problems: string[];
  newPage(options?: { width?: number; height?: number }): Promise<{ context: BrowserContext; page: Page }>;
  stop(): Promise<void>;
}

export async function startConsole(options: { extraArgs?: string[] } = {}): Promise<ConsoleEnv> {
  assert.ok(
    existsSync(join(REPO_ROOT, 'console/dist/index.html')),
    'console/dist is missing: npm ci builds it (prepare); after a change run `npm run console:build`',
  );
  assert.ok(
    existsSync(CHROMIUM),
    `no Chromium at ${CHROMIUM}: install it (apt-get install -y chromium; .ci/run does) or set GATEHOUSE_CHROMIUM`,
  );
  const plane = await startControlPlane({ extraArgs: options.extraArgs });
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root in a container has no user namespaces for Chromium's sandbox.
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    });
  } catch (error) {
    await plane.stop();
    throw error;
  }
  await mkdir(SCREENSHOTS, { recursive: true });
  const url = `${plane.adminUrl}/console/`;
  const problems: string[] = [];
  const contexts: BrowserContext[] = [];
  return {
    plane,
    browser,
    url,
    problems,
    async newPage({ width = 1280, height = 800 } = {}) {
      const context = await browser.newContext({ viewport: { width, height } });
      contexts.push(context);
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(url).origin });
      const page = await context.newPage();
      page.on('console', (m) => {
        if (m.type() === 'error' && /Content[- ]Security[- ]Policy|Refused to/i.test(m.text())) problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      return { context, page };
    },
    async stop() {
      for (const c of contexts) await c.close().catch(() => {});
      await browser.close().catch(() => {});
      await plane.stop();
    },
  };
}

/** Adds a console user through the admin API with the installation admin token (what the README tells a newcomer). */
export async function addConsoleUser(plane: ControlProcess, email: string, role = 'admin'): Promise<void> {
  const res = await plane.api().post('/workspaces/default/environments/DEV/collaborators', {
    email,
    role,
    password: PASSWORD,
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
}

export async function signIn(page: Page, url: string, email: string, password = PASSWORD): Promise<void> {
  await page.goto(url);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // The navigation is folded behind a Menu button on a phone: wait for the signed-in layout itself.
  await page.locator('main#main').waitFor();
}

/** Saves a full-page screenshot as test-results/console/<name>.png. */
export async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
