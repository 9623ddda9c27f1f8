import * as zlib from 'node:zlib';

/** How an archive file's bytes are laid out, told by its content (never by its name). */
export type ArchiveFormat = 'text' | 'gzip' | 'zstd' | 'zstd-framed';

/** The first four bytes of a zstd frame, read little-endian (RFC 8878). */
const ZSTD_MAGIC = 0xfd2fb528;

/**
 * The format of an archive from its first bytes: gzip (`1f 8b`), a zstd stream (the zstd magic at byte 0),
 * the collector file exporter's framing (a 4-byte big-endian length, then a zstd frame: the magic at
 * byte 4), else text (journal lines or OTLP JSON lines, which start with `{`).
 */
export function archiveFormat(buf: Buffer): ArchiveFormat {
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return 'gzip';
  if (buf.length >= 4 && buf.readUInt32LE(0) === ZSTD_MAGIC) return 'zstd';
  if (buf.length >= 8 && buf.readUInt32LE(4) === ZSTD_MAGIC) return 'zstd-framed';
  return 'text';
}

/**
 * The lines of an archive, whatever its file name: plain, gzip, zstd, or the collector's framed zstd
 * (`compression: zstd`). Data that does not decompress becomes a line saying so where it is, so the
 * verifier reports it as a malformed record of that file rather than stopping.
 */
export function archiveText(buf: Buffer): string {
  const format = archiveFormat(buf);
  try {
    if (format === 'gzip') return zlib.gunzipSync(buf).toString('utf8');
    if (format === 'zstd') return zlib.zstdDecompressSync(buf).toString('utf8');
  } catch (err) {
    return `(the ${format} data does not decompress: ${(err as Error).message})\n`;
  }
  if (format === 'zstd-framed') return zstdMessages(buf);
  return buf.toString('utf8');
}

/**
 * The collector's file exporter with `compression: zstd` (the bundled archive) writes each export as a
 * 4-byte big-endian length and one zstd frame holding one OTLP JSON message. Each becomes a line; a message
 * cut short (the collector died mid-write) becomes a torn last line.
 */
function zstdMessages(buf: Buffer): string {
  const lines: string[] = [];
  let at = 0;
  while (at + 4 <= buf.length) {
    const end = at + 4 + buf.readUInt32BE(at);
    if (end > buf.length) break;
    try {
      lines.push(zlib.zstdDecompressSync(buf.subarray(at + 4, end)).toString('utf8'), '\n');
    } catch (err) {
      // Stays a line, so verify reports it as malformed where it is.
      lines.push(`(the zstd message at byte ${at} does not decompress: ${(err as Error).message})\n`);
    }
    at = end;
  }
  if (at < buf.length) lines.push(`(${buf.length - at} bytes of a cut zstd message)`);
  return lines.join('');
}
