/**
 * Slots of the control array shared by `LineChecker` and its worker thread: {@link SLOT_INTS} per job slot.
 */
export const Control = {
  /** One of {@link State}. */
  State: 0,
  /** Start and end (exclusive) of the lines to check in the slot's data buffer. */
  Start: 1,
  End: 2,
  /** Lines checked successfully: entries in the slot's fields and sums arrays. */
  Count: 3,
  /** Microseconds the worker spent on the job (to balance the next ones). */
  Elapsed: 4,
  /** Runs of the checked lines with their Merkle blocks (see foldRuns): entries in runs and roots. */
  Runs: 5,
  /** Order of submission: with both slots waiting, the worker takes the older job. */
  Seq: 6,
} as const;

export const SLOT_INTS = 8;

/** After the slots: a counter the reading thread bumps whenever a slot changes state for the worker. */
export const BELL = 2 * SLOT_INTS;

/** Two job slots: the worker checks one while the reading thread fills or links the other. */
export const SLOTS = 2;

export const State = { Idle: 0, Job: 1, Done: 2, Failed: 3, Exit: 4 } as const;

/**
 * Per checked line, in a slot's fields array: offset of the line in the data buffer, chain start and end,
 * seq, offset of the prev hex digits. Its record hash and body digest are 64 bytes of the sums array.
 */
export const FIELDS = 5;

/** A checked line is at least this long (two 64-digit hex fields, the keys around them, a body). */
export const MIN_CHECKED_LINE = 180;

/** The shared memory of one worker, per slot where it is an array. */
export interface SharedBuffers {
  control: SharedArrayBuffer;
  data: SharedArrayBuffer[];
  fields: SharedArrayBuffer[];
  sums: SharedArrayBuffer[];
  runs: SharedArrayBuffer[];
  roots: SharedArrayBuffer[];
}
