import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// The compose job that creates the auditor account, run with the real sh and curl against a loopback server
// answering like Grafana's admin API (POST /api/admin/users: 200 created, 412 exists, 401 bad credentials).
const compose = parse(readFileSync('docker-compose.yml', 'utf8'));
const job = compose.services['grafana-auditor'];
// Compose turns $$ into a literal $ before the shell sees the command.
const script = (job.command[0] as string).replaceAll('$$', '$');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      'sh',
      ['-c', script],
      { env: { PATH: process.env.PATH ?? '', ...env } },
      (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
      },
    );
  });
}

describe('grafana-auditor job (docker-compose.yml)', () => {
  const users = new Map<string, { password: string; orgId: number }>();
  let server: Server;
  let url: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        const auth = Buffer.from(
          (req.headers.authorization ?? '').replace(/^Basic /, ''),
          'base64',
        ).toString();
        res.setHeader('content-type', 'application/json');
        if (req.method !== 'POST' || req.url !== '/api/admin/users') {
          res.writeHead(404).end('{"message":"not found"}');
        } else if (auth !== 'admin:s3cret') {
          res.writeHead(401).end('{"message":"invalid username or password"}');
        } else {
          const u = JSON.parse(body) as { login: string; password: string; OrgId: number };
          if (users.has(u.login)) {
            res
              .writeHead(412)
              .end('{"message":"User with email \'\' or username \'auditor\' already exists"}');
          } else {
            users.set(u.login, { password: u.password, orgId: u.OrgId });
            res.writeHead(200).end('{"id":2,"message":"User created"}');
          }
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it('creates the account once with a well-formed JSON body, then leaves it as it is', async () => {
    const env = { GRAFANA_URL: url, GF_ADMIN: 'admin:s3cret', AUDITOR_PASSWORD: "it's a p@ss $word" };
    const first = await run(env);
    expect(first.stderr).toBe('');
    expect(first.stdout).toContain('auditor account created');
    expect(first.code).toBe(0);
    expect(users.get('auditor')).toEqual({ password: "it's a p@ss $word", orgId: 1 });
    const again = await run(env);
    expect(again.stdout).toContain('auditor account exists');
    expect(again.code).toBe(0);
  });

  it('fails with the reason on wrong admin credentials', async () => {
    const r = await run({ GRAFANA_URL: url, GF_ADMIN: 'admin:wrong', AUDITOR_PASSWORD: 'x-long-enough' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('HTTP 401');
    expect(r.stderr).toContain('invalid username or password');
  });

  it('refuses a password that cannot be embedded in the JSON body, before calling Grafana', async () => {
    for (const pw of ['has"quote', 'back\\slash']) {
      const r = await run({
        GRAFANA_URL: 'http://127.0.0.1:9',
        GF_ADMIN: 'admin:s3cret',
        AUDITOR_PASSWORD: pw,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('must not contain a double quote or a backslash');
    }
  });

  it('reaches Grafana inside the compose network by default and waits for it to be healthy', () => {
    expect(script).toContain(`\${GRAFANA_URL:-http://grafana:3000}`);
    expect(job.depends_on.grafana.condition).toBe('service_healthy');
    expect(job.restart).toBe('no');
  });
});
