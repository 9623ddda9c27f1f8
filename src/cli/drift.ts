import { parseRecordLine } from '../integrity/index.js';
import {
  ATTR_ML_DEPLOYMENT_ID,
  ATTR_ML_DRIFT_DATASET_DRIFT,
  ATTR_ML_DRIFT_FEATURE,
  ATTR_ML_DRIFT_ID,
  ATTR_ML_DRIFT_P_VALUE,
  ATTR_ML_DRIFT_SCORE,
  ATTR_ML_DRIFT_TEST,
  ATTR_ML_DRIFT_WINDOW_END,
  ATTR_ML_MODEL_NAME,
  ATTR_ML_MODEL_VERSION,
  ATTR_ML_RETRAINING_TRIGGER_IDS,
  ATTR_ML_RUN_ID,
  EVENT_ML_DRIFT_DETECTED,
  EVENT_ML_RETRAINING_TRIGGERED,
} from '../semconv/index.js';
import { JournalReader } from '../sources/journal-reader.js';
import { ACCESS_HELP, recordAccess } from './access-record.js';
import { CliError, parseCommand, resolveJournalDir } from './command.js';

const HELP = `usage: mltrail drift [--journal DIR] [--model NAME] [--json]

Summarises ml.drift.detected records per model version: drifted features, tests, worst scores, windows,
dataset-level drift, and which retraining runs they triggered. Reads the journal (--journal, MLTRAIL_DIR,
./.mltrail). Exit 0 when there are drift records, 1 when there are none, 2 on usage or I/O errors.
${ACCESS_HELP}
`;

interface FeatureSummary {
  feature: string;
  test: string;
  alerts: number;
  worstScore: number;
  minPValue: number | undefined;
  lastWindowEnd: string;
}

interface VersionSummary {
  model: string;
  version: string;
  deployments: string[];
  alerts: number;
  datasetDriftWindows: number;
  firstAlert: string;
  lastAlert: string;
  features: FeatureSummary[];
  retrainingRuns: string[];
}

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    HELP,
    {
      journal: { type: 'string' },
      model: { type: 'string' },
      json: { type: 'boolean' },
      actor: { type: 'string' },
      'access-journal': { type: 'string' },
    },
    0,
  );
  if (parsed === undefined) return 0;
  const { values } = parsed;
  const dir = resolveJournalDir(values.journal);
  const versions = new Map<string, VersionSummary>();
  const driftToVersion = new Map<string, VersionSummary>();
  const retrainings: { runId: string; triggers: string[] }[] = [];
  try {
    for (const l of new JournalReader(dir).lines()) {
      const isDrift = l.text.includes(EVENT_ML_DRIFT_DETECTED);
      const isRetrain = l.text.includes(EVENT_ML_RETRAINING_TRIGGERED);
      if (!isDrift && !isRetrain) continue;
      const r = parseRecordLine(l.text, l);
      if (r.body === '') continue;
      const b = JSON.parse(r.body) as Record<string, unknown>;
      if (r.event === EVENT_ML_RETRAINING_TRIGGERED) {
        retrainings.push({
          runId: String(b[ATTR_ML_RUN_ID] ?? ''),
          triggers: (b[ATTR_ML_RETRAINING_TRIGGER_IDS] as string[]) ?? [],
        });
        continue;
      }
      if (r.event !== EVENT_ML_DRIFT_DETECTED) continue;
      const model = String(b[ATTR_ML_MODEL_NAME] ?? '(unknown model)');
      if (values.model !== undefined && model !== values.model) continue;
      const version = String(b[ATTR_ML_MODEL_VERSION] ?? '?');
      const key = `${model}@${version}`;
      let v = versions.get(key);
      if (v === undefined) {
        v = {
          model,
          version,
          deployments: [],
          alerts: 0,
          datasetDriftWindows: 0,
          firstAlert: r.ts,
          lastAlert: r.ts,
          features: [],
          retrainingRuns: [],
        };
        versions.set(key, v);
      }
      const dep = b[ATTR_ML_DEPLOYMENT_ID];
      if (typeof dep === 'string' && !v.deployments.includes(dep)) v.deployments.push(dep);
      v.lastAlert = r.ts;
      driftToVersion.set(String(b[ATTR_ML_DRIFT_ID]), v);
      if (b[ATTR_ML_DRIFT_DATASET_DRIFT] === true) {
        v.datasetDriftWindows++;
        continue;
      }
      v.alerts++;
      const feature = String(b[ATTR_ML_DRIFT_FEATURE] ?? '?');
      const test = String(b[ATTR_ML_DRIFT_TEST] ?? '?');
      let f = v.features.find((x) => x.feature === feature && x.test === test);
      if (f === undefined) {
        f = { feature, test, alerts: 0, worstScore: 0, minPValue: undefined, lastWindowEnd: '' };
        v.features.push(f);
      }
      f.alerts++;
      f.worstScore = Math.max(f.worstScore, Number(b[ATTR_ML_DRIFT_SCORE] ?? 0));
      const p = b[ATTR_ML_DRIFT_P_VALUE];
      if (typeof p === 'number') f.minPValue = f.minPValue === undefined ? p : Math.min(f.minPValue, p);
      f.lastWindowEnd = String(b[ATTR_ML_DRIFT_WINDOW_END] ?? r.ts);
    }
  } catch (err) {
    throw new CliError(`cannot read the journal in ${dir}: ${(err as Error).message}`);
  }
  for (const rt of retrainings) {
    for (const t of rt.triggers) {
      const v = driftToVersion.get(t);
      if (v !== undefined && !v.retrainingRuns.includes(rt.runId)) v.retrainingRuns.push(rt.runId);
    }
  }
  await recordAccess({
    read: dir,
    journal: values['access-journal'],
    command: 'drift',
    argv,
    resultCount: versions.size,
    actor: values.actor,
  });
  const list = [...versions.values()];
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ journal: dir, versions: list }, null, 2)}\n`);
    return list.length > 0 ? 0 : 1;
  }
  if (list.length === 0) {
    process.stdout.write(`no drift records in ${dir}\n`);
    return 1;
  }
  let s = '';
  for (const v of list) {
    s += `${v.model} v${v.version}: ${v.alerts} feature alert(s), ${v.datasetDriftWindows} window(s) with dataset drift, ${v.firstAlert} → ${v.lastAlert}\n`;
    for (const f of v.features.sort((a, b) => b.alerts - a.alerts)) {
      s += `  ${f.feature.padEnd(18)} ${f.test.padEnd(13)} ${String(f.alerts).padStart(4)} alert(s)  worst score ${f.worstScore.toFixed(3)}`;
      if (f.minPValue !== undefined) s += `  min p ${f.minPValue.toExponential(2)}`;
      s += '\n';
    }
    if (v.retrainingRuns.length > 0) s += `  → retrained in run(s) ${v.retrainingRuns.join(', ')}\n`;
  }
  process.stdout.write(s);
  return 0;
}
