/**
 * A process that signs with the checkpoint key generated beside the journal says so on stderr (a
 * MltrailSigningKeyWarning, src/integrity/signing-key.ts). Tests of commands that write into such a
 * journal expect exactly that on stderr and nothing else: this removes it (and Node's one-time hint
 * after the first warning of a process), leaving anything else for the assertion.
 */
export function withoutSigningKeyWarning(stderr: string): string {
  return stderr
    .replace(/^\(node:\d+\) MltrailSigningKeyWarning: mltrail: [^\n]*\n/gm, '')
    .replace(/^\(Use `node --trace-warnings \.\.\.` to show where the warning was created\)\n/m, '');
}
