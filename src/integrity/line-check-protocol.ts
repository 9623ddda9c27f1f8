/** Slots of the control array shared by `LineChecker` and its worker thread. */
export const Control = {
  /** One of {@link State}. */
  State: 0,
  /** End (exclusive) of the submitted lines in the data buffer; they start at 0. */
  End: 1,
  /** Lines checked successfully: entries in the fields and sums arrays. */
  Count: 2,
  /** Microseconds the worker spent on the last job (to balance the next one). */
  Elapsed: 3,
} as const;

export const State = { Idle: 0, Job: 1, Done: 2, Failed: 3, Exit: 4 } as const;

/**
 * Per checked line, in the fields array: offset of the line in the data buffer, chain start and end,
 * seq, offset of the prev hex digits. Its record hash and body digest are 64 bytes of the sums array.
 */
export const FIELDS = 5;

/** A checked line is at least this long (three 64-digit hex fields and the keys around them). */
export const MIN_CHECKED_LINE = 256;

/** The shared memory of one worker. */
export interface SharedBuffers {
  control: SharedArrayBuffer;
  data: SharedArrayBuffer;
  fields: SharedArrayBuffer;
  sums: SharedArrayBuffer;
}
