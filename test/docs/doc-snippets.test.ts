import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

/**
 * Every fenced shell command and TypeScript/JavaScript snippet of README.md and docs/*.md, run as a new
 * user would run it: shell blocks under the shell their fence names (`sh` is POSIX sh, i.e. dash here),
 * snippets as ES modules under Node, in a directory holding a fresh demo journal at `.mltrail/demo`.
 *
 * What the runner changes, all listed here:
 * - PLACEHOLDERS: `<chain>` and `<id>` become a chain id and a prediction id of that journal.
 * - `.mltrail/chains` is a link to the demo journal's chains, for docs that read the default journal.
 * - `npx mltrail …` runs this checkout's CLI (a shell function; npx would otherwise ask the registry).
 * - NOT_RUNNABLE: blocks (or single lines of a block) that cannot run here, each with its reason.
 * A block that should not be run can also be fenced `text` (a synopsis, output), which this test ignores.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/cli/main.js');

/** Blocks, or lines of a block, this test cannot run here: `file`, the start of the line, and why. */
const NOT_RUNNABLE: { file: string; line: string; reason: string; wholeBlock?: boolean }[] = [
  {
    file: 'README.md',
    line: "import { createTrail } from 'mltrail';",
    wholeBlock: true,
    reason: "a fragment: rows and fit are the reader's data and training code",
  },
  {
    file: 'docs/drift.md',
    line: "import { buildProfile, saveProfile } from 'mltrail/drift';",
    wholeBlock: true,
    reason: "a fragment: trainingRows, train and fit are the reader's",
  },
  {
    file: 'docs/drift.md',
    line: "import { DriftMonitor, loadProfile } from 'mltrail/drift';",
    wholeBlock: true,
    reason: "a fragment: deployment, trail and features are the reader's",
  },
  {
    file: 'docs/privacy.md',
    line: "import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';",
    wholeBlock: true,
    reason: "a fragment: exporter is the reader's",
  },
  {
    file: 'docs/privacy.md',
    line: "import { envDetector, processDetector } from '@opentelemetry/resources';",
    wholeBlock: true,
    reason: "a fragment: NodeSDK, redactor and exporter are the reader's",
  },
  {
    file: 'README.md',
    line: 'npm ci && npm start',
    wholeBlock: true,
    reason: 'reinstalls the checkout and runs the whole test suite (this test is part of it)',
  },
  {
    file: 'README.md',
    line: 'npm run collector:build',
    wholeBlock: true,
    reason: 'docker compose and a Go build: covered by test/grafana and test/collector',
  },
  {
    file: 'docs/instrumentation.md',
    line: 'node --import mltrail/register server.mjs',
    wholeBlock: true,
    reason: 'needs an app; test/instrumentation/register-e2e.test.ts runs both forms',
  },
  {
    file: 'docs/integrity.md',
    line: 'npx mltrail verify /archive/',
    reason: "the collector's archive: test/collector verifies one",
  },
  {
    file: 'docs/integrity.md',
    line: 'npx mltrail verify --loki',
    reason: 'needs a Loki: test/sources/loki-source.test.ts',
  },
  {
    file: 'docs/integrity.md',
    line: 'npx mltrail verify --trusted-key',
    reason: 'needs a held checkpoint and its key: test/integrity/verify.test.ts',
  },
  {
    file: 'docs/integrity.md',
    line: 'npx mltrail verify --trust-file',
    reason: 'needs a trust file of the operator: test/integrity/trust-attacks.test.ts',
  },
  {
    file: 'docs/integrity.md',
    line: 'cd test/interop/go',
    wholeBlock: true,
    reason: 'a Go build inside the checkout: test/interop runs these commands',
  },
];

/** Commands that may exit other than 0 on the demo journal (default: only 0), by the start of the line. */
const EXIT_STATUS: { file: string; line: string; status: number[]; reason: string }[] = [
  {
    file: 'docs/drift.md',
    line: 'npx mltrail drift',
    status: [0, 1],
    reason: 'exit 1 means drift was found, which the demo provokes on purpose',
  },
];

interface Block {
  file: string;
  /** 1-based line of the block's first line of code. */
  line: number;
  lang: string;
  code: string;
}

const SHELLS: Record<string, string> = { sh: 'sh', shell: 'sh', bash: 'bash', console: 'sh' };
const SCRIPTS = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs']);

function docBlocks(): Block[] {
  const files = [
    'README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .sort()
      .map((f) => `docs/${f}`),
  ];
  const out: Block[] = [];
  for (const file of files) {
    const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const open = /^```(\w*)/.exec(lines[i]);
      if (open === null) continue;
      let end = i + 1;
      while (end < lines.length && !lines[end].startsWith('```')) end++;
      const lang = open[1].toLowerCase();
      if (lang in SHELLS || SCRIPTS.has(lang))
        out.push({ file, line: i + 2, lang, code: lines.slice(i + 1, end).join('\n') });
      i = end;
    }
  }
  return out;
}

const blocks = docBlocks();
let work: string;
const values: Record<string, string> = {};

beforeAll(() => {
  // A directory outside the checkout that sees this package as an installed dependency (node_modules/mltrail,
  // next to the checkout's own dependencies), as an app using mltrail does.
  work = mkdtempSync(join(tmpdir(), 'mltrail-docs-'));
  mkdirSync(join(work, 'node_modules'));
  for (const name of readdirSync(join(ROOT, 'node_modules')))
    symlinkSync(join(ROOT, 'node_modules', name), join(work, 'node_modules', name));
  symlinkSync(ROOT, join(work, 'node_modules/mltrail'));
  const demo = spawnSync(process.execPath, [CLI, 'demo', '--journal', join(work, '.mltrail/demo')], {
    cwd: work,
    encoding: 'utf8',
  });
  if (demo.status !== 0) throw new Error(`the demo failed: ${demo.stderr}`);
  const chainsDir = join(work, '.mltrail/demo/chains');
  // The longest chain (the server's), so a recipe that reads its 42nd line finds one.
  values['<chain>'] = readdirSync(chainsDir)
    .map((c) => ({ c, n: readFileSync(join(chainsDir, c, '000001.ndjson'), 'utf8').split('\n').length }))
    .sort((a, b) => b.n - a.n)[0].c;
  // Docs that use the default journal (./.mltrail) see the same chains.
  symlinkSync('demo/chains', join(work, '.mltrail/chains'));
  values['<id>'] = /lineage of prediction (\S+)/.exec(demo.stdout)?.[1] ?? '';
}, 300_000);

function substitute(code: string): string {
  let out = code;
  for (const [placeholder, value] of Object.entries(values)) out = out.replaceAll(placeholder, value);
  return out;
}

function where(b: Block, offset = 0): string {
  return `${b.file}:${b.line + offset}`;
}

const shellBlocks = blocks.filter((b) => b.lang in SHELLS);
const scriptBlocks = blocks.filter((b) => SCRIPTS.has(b.lang));

describe('docs: every fenced shell block runs as written, under the shell its fence names', () => {
  it('finds the blocks', () => {
    expect(shellBlocks.length).toBeGreaterThan(5);
  });
  it.each(shellBlocks.map((b) => [where(b), b] as const))('%s', (_where, b) => {
    const lines = b.code.split('\n');
    const skipBlock = NOT_RUNNABLE.find(
      (s) => s.wholeBlock && s.file === b.file && lines.some((l) => l.startsWith(s.line)),
    );
    if (skipBlock !== undefined) {
      expect(skipBlock.reason).not.toBe('');
      return;
    }
    const kept = lines.map((l) =>
      NOT_RUNNABLE.some((s) => !s.wholeBlock && s.file === b.file && l.startsWith(s.line))
        ? ': not runnable here'
        : l,
    );
    const bare = kept.findIndex((l) => /^\s*mltrail\s/.test(l));
    expect(bare, `${where(b, bare)}: write "npx mltrail", a clone has no mltrail on PATH`).toBe(-1);
    // Each command's exit status is checked where it runs (a block is not judged by its last command only).
    const checked: string[] = [];
    let inQuote = false; // a double-quoted string across lines: no check inside it
    kept.forEach((l, i) => {
      checked.push(l);
      if ((l.replace(/'[^']*'/g, '').match(/(?<!\\)"/g) ?? []).length % 2 === 1) inQuote = !inQuote;
      if (inQuote || l.trim() === '' || l.trim().startsWith('#') || /\\\s*$/.test(l)) return;
      const ok = EXIT_STATUS.find((s) => s.file === b.file && l.startsWith(s.line))?.status ?? [0];
      checked.push(
        `__s=$?; case " ${ok.join(' ')} " in *" $__s "*) ;; *) echo "${where(b, i)}: exited $__s" >&2; exit 97;; esac`,
      );
    });
    const script = `npx() { if [ "$1" = mltrail ]; then shift; node '${CLI}' "$@"; else command npx "$@"; fi; }\n${substitute(checked.join('\n'))}\n`;
    const r = spawnSync(SHELLS[b.lang], ['-c', script], {
      cwd: work,
      encoding: 'utf8',
      env: { ...process.env, MLTRAIL_DIR: '.mltrail/demo' },
      timeout: 120_000,
    });
    expect(r.status, `${where(b)} (${SHELLS[b.lang]}) failed:\n${r.stderr}\n${r.stdout.slice(0, 2000)}`).toBe(
      0,
    );
    expect(r.stderr, `${where(b)} (${SHELLS[b.lang]})`).not.toMatch(
      /not found|Syntax error|syntax error|unexpected/,
    );
  });
});

describe('docs: every TypeScript/JavaScript snippet runs as an ES module', () => {
  it('finds the snippets', () => {
    expect(scriptBlocks.length).toBeGreaterThan(3);
  });
  it.each(scriptBlocks.map((b) => [where(b), b] as const))('%s', (_where, b) => {
    const skip = NOT_RUNNABLE.find(
      (s) => s.wholeBlock && s.file === b.file && b.code.split('\n').some((l) => l.startsWith(s.line)),
    );
    if (skip !== undefined) {
      expect(skip.reason).not.toBe('');
      return;
    }
    const file = join(
      work,
      `snippet-${b.file.replace(/\W/g, '-')}-${b.line}.${b.lang.startsWith('t') ? 'mts' : 'mjs'}`,
    );
    writeFileSync(file, substitute(b.code));
    const r = spawnSync(process.execPath, [file], {
      cwd: work,
      encoding: 'utf8',
      env: { ...process.env, MLTRAIL_DIR: '.mltrail/demo' },
      timeout: 120_000,
    });
    expect(r.status, `${where(b)} failed:\n${r.stderr}`).toBe(0);
  });
});
