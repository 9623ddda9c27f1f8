import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseRecordLine } from '../../src/integrity/index.js';
import { JournalReader } from '../../src/journal/index.js';
import { escapeHtml } from '../../src/report/index.js';
import { generatedVerifierKey } from '../fixtures/trust.js';

const CHROMIUM = '/usr/bin/chromium';
const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8' });
const chromiumPresent = existsSync(CHROMIUM);
if (!chromiumPresent && process.env.CI === 'true')
  throw new Error(`${CHROMIUM} is missing (npm run test:all installs it)`);

let dir = '';
let predictionId = '';
let modelDigest = '';
let key = '';

beforeAll(() => {
  dir = join(mkdtempSync(join(tmpdir(), 'mltrail-report-')), 'journal');
  expect(cli(['demo', '--journal', dir]).status).toBe(0);
  for (const l of new JournalReader(dir).lines()) {
    const r = parseRecordLine(l.text);
    const b = r.body === '' ? {} : JSON.parse(r.body);
    if (r.event === 'ml.decision' && b['ml.decision.outcome'] === 'decline' && predictionId === '')
      predictionId = b['ml.prediction.id'];
    if (r.event === 'ml.model.registered' && b['ml.model.version'] === '1')
      modelDigest = b['ml.model.digest'];
  }
  expect(predictionId).not.toBe('');
  key = generatedVerifierKey(dir);
});

describe('mltrail report', () => {
  it('escapes every record value', () => {
    expect(escapeHtml('<img src=x onerror="alert(1)">&\'')).toBe(
      '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;',
    );
  });

  it('--json gathers the evidence, and the integrity proof verifies under the pinned key', () => {
    const r = cli(['report', '--prediction', predictionId, '--journal', dir, '--json', '--trusted-key', key]);
    expect(r.status).toBe(0);
    const e = JSON.parse(r.stdout);
    expect(e.decisions[0]['ml.decision.outcome']).toBe('decline');
    expect(e.model['ml.model.digest']).toBe(modelDigest);
    expect(e.training['ml.training.algorithm']).toBe('logistic-regression');
    expect(e.integrity).toEqual(
      expect.objectContaining({ verified: true, inclusionValid: true, journalIntact: true }),
    );
    expect(e.integrity.checkpoint.signatureValid).toBe(true);
    expect(e.integrity.badge).toMatch(/^verified: pinned key mltrail-[^ ]+, covered by checkpoint size \d+/);
    // Without a pinned key the same journal is intact but not verified: nobody said which key to trust.
    const tofu = JSON.parse(cli(['report', '--prediction', predictionId, '--journal', dir, '--json']).stdout);
    expect(tofu.integrity).toEqual(
      expect.objectContaining({ verified: false, journalIntact: true, inclusionValid: true }),
    );
    expect(tofu.integrity.badge).toMatch(/^NOT VERIFIED: no trusted key given \(trust on first use/);
  });

  it('unknown subjects exit 1 with a clear message; missing subject is a usage error', () => {
    const r = cli(['report', '--prediction', 'nope', '--journal', dir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no prediction nope in/);
    expect(cli(['report', '--journal', dir]).status).toBe(2);
  });

  it.skipIf(!chromiumPresent)(
    'renders in real headless Chromium without console errors: prediction id, model digest, "verified"; screenshot saved',
    async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'mltrail-report-html-')), 'report.html');
      const r = cli([
        'report',
        '--prediction',
        predictionId,
        '--journal',
        dir,
        '--out',
        out,
        '--trusted-key',
        key,
      ]);
      expect(r.status).toBe(0);
      const html = readFileSync(out, 'utf8');
      // Record values may hold URLs (shown as text in the embedded lines); nothing may load one.
      expect(html).not.toMatch(/<script|(?:src|href|action)=["']?https?:/);
      const browser = await chromium.launch({
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
      try {
        const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
        const errors: string[] = [];
        page.on('console', (m) => {
          if (m.type() === 'error') errors.push(m.text());
        });
        page.on('pageerror', (err) => errors.push(String(err)));
        const requests: string[] = [];
        page.on('request', (req) => requests.push(req.url()));
        await page.goto(`file://${out}`);
        const text = await page.innerText('body');
        expect(text).toContain(predictionId);
        expect(text).toContain(modelDigest);
        expect(text).toMatch(/verified: pinned key/);
        expect(text).not.toMatch(/NOT VERIFIED|NOT covered/);
        expect(await page.locator('svg[aria-label="lineage graph"] rect').count()).toBeGreaterThan(6);
        expect(errors).toEqual([]);
        expect(requests.filter((u) => !u.startsWith('file://') && !u.startsWith('data:'))).toEqual([]);
        mkdirSync('test/artifacts', { recursive: true });
        await page.screenshot({ path: 'test/artifacts/evidence-report.png', fullPage: true });
        await page.emulateMedia({ media: 'print' });
        expect(await page.locator('main').isVisible()).toBe(true);
      } finally {
        await browser.close();
      }
    },
  );
});
