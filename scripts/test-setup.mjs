// Installs what the full test suite needs on a fresh machine, then returns: headless Chromium (Debian
// package, for the evidence-report test), the bundled collector binary (Go build, cached by manifest), and
// the Prometheus and Jaeger the end-to-end test runs against (Go builds from the module proxy, cached by
// version in test/e2e/backends/_build).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

function run(cmd, args) {
  process.stderr.write(`test-setup: ${cmd} ${args.join(' ')}\n`);
  execFileSync(cmd, args, { stdio: 'inherit' });
}

if (!existsSync('/usr/bin/chromium')) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const sudo = isRoot ? [] : ['sudo'];
  const apt = (args) => (isRoot ? run('apt-get', args) : run('sudo', ['apt-get', ...args]));
  if (!isRoot && spawnSync('sudo', ['-n', 'true']).status !== 0) {
    process.stderr.write(
      'test-setup: chromium is missing and apt-get needs root; the report test will skip\n',
    );
  } else {
    void sudo;
    apt(['update', '-qq']);
    apt(['install', '-y', '-qq', '--no-install-recommends', 'chromium']);
  }
}

run('npm', ['run', '--silent', 'collector:build']);
run('bash', ['test/e2e/backends/build.sh']);
