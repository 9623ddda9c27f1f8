import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRecordLine } from '../../src/integrity/index.js';
import { JournalReader } from '../../src/journal/index.js';
import { buildTrailJournal, type TrailJournal } from '../fixtures/trail-journal.js';
import { generatedVerifierKey } from '../fixtures/trust.js';

// The evidence report renders record values that people and upstream systems control (reasons, reviewer
// and approver names, drift feature names, descriptions). A journal written through the real trail with an
// XSS payload in every such field must render as inert text in real headless Chromium.

const CHROMIUM = '/usr/bin/chromium';
const chromiumPresent = existsSync(CHROMIUM);
const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8' });
const PAYLOAD =
  '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script></td></tr></table><svg onload="window.__xss=3"></svg>\'"&amp;';

let j: TrailJournal;
let browser: Browser | undefined;

beforeAll(async () => {
  j = await buildTrailJournal({ hostile: PAYLOAD });
  if (chromiumPresent)
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
});

afterAll(async () => {
  await browser?.close();
});

async function open(file: string) {
  const page = await browser!.newPage({ viewport: { width: 1200, height: 900 } });
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('pageerror', (err) => problems.push(String(err)));
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  const requests: string[] = [];
  page.on('request', (req) => requests.push(req.url()));
  await page.goto(`file://${file}`);
  return { page, problems, requests };
}

describe('mltrail report on hostile record values', () => {
  it('--json carries the payload verbatim (the journal is evidence; only the HTML escapes it)', () => {
    const r = cli([
      'report',
      '--prediction',
      j.declined,
      '--journal',
      j.dir,
      '--json',
      '--trusted-key',
      generatedVerifierKey(j.dir),
    ]);
    expect(r.status, r.stderr).toBe(0);
    const e = JSON.parse(r.stdout);
    expect(e.decisions[0]['ml.decision.reason']).toContain(PAYLOAD);
    expect(e.decisions[0]['ml.decision.reviewer']).toContain(PAYLOAD);
    expect(e.integrity.verified).toBe(true);
  });

  it.skipIf(!chromiumPresent)(
    'a prediction report shows the payload as text: no script runs, no element or request is injected',
    async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'mltrail-hostile-')), 'report.html');
      const r = cli([
        'report',
        '--prediction',
        j.declined,
        '--journal',
        j.dir,
        '--out',
        out,
        '--trusted-key',
        generatedVerifierKey(j.dir),
      ]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/verified: pinned key/);
      const html = readFileSync(out, 'utf8');
      expect(html).not.toContain('<script');
      expect(html).not.toContain('<img');
      const { page, problems, requests } = await open(out);
      try {
        expect(await page.evaluate('window.__xss')).toBeUndefined();
        expect(await page.locator('script, img, iframe, object, embed').count()).toBe(0);
        // No element anywhere carries an event-handler attribute.
        const handlers = await page.evaluate(
          "[...document.querySelectorAll('*')].filter((el) => [...el.attributes].some((a) => a.name.toLowerCase().startsWith('on'))).length",
        );
        expect(handlers).toBe(0);
        const text = await page.innerText('body');
        expect(text).toContain(`risk 1.00 >= 0.50 ${PAYLOAD}`);
        expect(text).toContain(j.declined);
        expect(text).toContain(j.model1.digest!);
        expect(text).toMatch(/\bverified\b/);
        expect(problems).toEqual([]);
        expect(requests.filter((u) => !u.startsWith('file://') && !u.startsWith('data:'))).toEqual([]);
        mkdirSync('test/artifacts', { recursive: true });
        await page.screenshot({ path: 'test/artifacts/evidence-report-hostile.png', fullPage: true });
      } finally {
        await page.close();
      }
    },
  );

  it.skipIf(!chromiumPresent)(
    'a model report (v1): approval, both deployments, the drift alerts on its deployment, and the payload inert',
    async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'mltrail-hostile-model-')), 'report.html');
      const r = cli(['report', '--model', 'credit-risk@1', '--journal', j.dir, '--out', out]);
      expect(r.status, r.stderr).toBe(0);
      const { page, problems } = await open(out);
      try {
        expect(await page.evaluate('window.__xss')).toBeUndefined();
        expect(await page.locator('script, img').count()).toBe(0);
        const text = await page.innerText('body');
        expect(text).toContain(j.model1.digest!);
        expect(text).toContain(`model-risk-committee ${PAYLOAD}`);
        expect(text).toContain(`debt ${PAYLOAD}`);
        expect(text).toContain(j.deployment1.id);
        expect(text).toContain(j.deployment2.id);
        expect(text).toMatch(/\bverified\b/);
        expect(problems).toEqual([]);
      } finally {
        await page.close();
      }
    },
  );

  it('the model report also resolves by digest; an unknown model is exit 1 naming the accepted forms', () => {
    const accessJournal = join(mkdtempSync(join(tmpdir(), 'mltrail-access-')), 'access');
    const r = cli([
      'report',
      '--model',
      j.model2.digest!,
      '--journal',
      j.dir,
      '--json',
      '--access-journal',
      accessJournal,
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).subject).toEqual({ kind: 'model', id: 'credit-risk@2' });
    const bad = cli([
      'report',
      '--model',
      'credit-risk@9',
      '--journal',
      j.dir,
      '--actor',
      'probe-7',
      '--access-journal',
      accessJournal,
    ]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/no model version credit-risk@9 .*name@version or the sha256 digest/);
    // Who looked: every report run, including the lookup that found nothing, is in the access journal.
    const access = [...new JournalReader(accessJournal).lines()]
      .map((l) => parseRecordLine(l.text))
      .filter((rec) => rec.event === 'mltrail.access')
      .map((rec) => JSON.parse(rec.body));
    expect(access.filter((a) => a['mltrail.access.command'] === 'report').length).toBeGreaterThanOrEqual(2);
    expect(access.at(-1)).toEqual(
      expect.objectContaining({
        'mltrail.access.actor': 'probe-7',
        'mltrail.access.command': 'report',
        'mltrail.access.result_count': 0,
        'mltrail.access.args_digest': expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      }),
    );
    expect(cli(['verify', j.dir]).status).toBe(0);
    expect(cli(['verify', accessJournal]).status).toBe(0);
  });
});
