import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { parseRecordLine } from '../../src/integrity/index.js';
import { AuditLog } from '../../src/journal/index.js';
import { createTrail, type Trail, type TrailRuntimeOptions } from '../../src/trail/index.js';

let contextInstalled = false;

/** A trail wired to real SDK providers with in-memory exporters and a real journal in a temp dir. */
export interface TrailHarness {
  trail: Trail;
  spans: InMemorySpanExporter;
  logs: InMemoryLogRecordExporter;
  dir: string;
  tracerProvider: TracerProvider;
  loggerProvider: LoggerProvider;
  /** Every journal line written so far, parsed. */
  journal(): Record<string, unknown>[];
}

export async function trailHarness(options: Partial<TrailRuntimeOptions> = {}): Promise<TrailHarness> {
  if (!contextInstalled) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    contextInstalled = true;
  }
  const dir = mkdtempSync(join(tmpdir(), 'mltrail-trail-'));
  const spans = new InMemorySpanExporter();
  const logs = new InMemoryLogRecordExporter();
  const tracerProvider = new TracerProvider({
    spanProcessors: [new SimpleSpanProcessor({ exporter: spans })],
  });
  const loggerProvider = new LoggerProvider({
    processors: [new SimpleLogRecordProcessor({ exporter: logs })],
  });
  const sink = options.sink ?? new AuditLog({ dir, groupCommitMs: 1 });
  const trail = await createTrail({
    serviceName: 'test-service',
    environment: 'test',
    pipeline: 'unit',
    tracerProvider,
    loggerProvider,
    sink,
    ...options,
  });
  return {
    trail,
    spans,
    logs,
    dir,
    tracerProvider,
    loggerProvider,
    journal: () => readJournal(dir),
  };
}

/** Reads every NDJSON line under a journal directory (any layout), in file order, as records. */
export function readJournal(dir: string): Record<string, unknown>[] {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ndjson')) files.push(p);
    }
  };
  walk(dir);
  const out: Record<string, unknown>[] = [];
  for (const f of files) {
    for (const line of readFileSync(f, 'utf8').split('\n'))
      if (line !== '') out.push(parseRecordLine(line) as unknown as Record<string, unknown>);
  }
  return out;
}

export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
export const HEX32 = /^[0-9a-f]{32}$/;
export const HEX16 = /^[0-9a-f]{16}$/;
export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
