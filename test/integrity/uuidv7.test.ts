import { describe, expect, it } from 'vitest';
import { uuidv7, uuidv7Time } from '../../src/integrity/index.js';

describe('uuidv7', () => {
  it('is RFC 9562 version 7, unique, strictly increasing within a process, and carries its time', () => {
    const before = Date.now();
    const ids = Array.from({ length: 50_000 }, () => uuidv7());
    const after = Date.now();
    for (const id of ids)
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(ids.length);
    for (let i = 1; i < ids.length; i++) expect(ids[i] > ids[i - 1]).toBe(true);
    expect(uuidv7Time(ids[0])).toBeGreaterThanOrEqual(before);
    // Ids made faster than the 12-bit counter can number them within one millisecond (it starts below
    // 1024, so at least 3 072 a millisecond) borrow the next millisecond (RFC 9562, section 6.2): a fast
    // machine making 50 000 in a few milliseconds runs ahead of the clock by at most this much.
    const borrowed = Math.ceil(ids.length / (0x1000 - 0x400));
    expect(uuidv7Time(ids.at(-1)!)).toBeLessThanOrEqual(after + 1 + borrowed);
  });
});
