import { TextDecoder } from 'node:util';

/** What {@link readOnnxModelInfo} reads from the top level of an ONNX `ModelProto`. */
export interface OnnxModelInfo {
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number;
  /** `domain:version` per imported operator set; the default domain is written `ai.onnx`. */
  opsets: string[];
}

/**
 * Reads the producer, IR version and operator sets from ONNX model bytes without decoding the graph: it
 * walks the top-level protobuf fields and skips the graph and initializers by their length prefix, so the
 * cost does not grow with the weights. Returns undefined for bytes that are not a well-formed message.
 */
export function readOnnxModelInfo(bytes: Uint8Array): OnnxModelInfo | undefined {
  const info: OnnxModelInfo = { opsets: [] };
  const decoder = new TextDecoder();
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (pos >= bytes.length || shift > 63) throw new RangeError('truncated varint');
      const b = bytes[pos++] as number;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
  };
  try {
    while (pos < bytes.length) {
      const key = varint();
      const field = Math.floor(key / 8);
      const wire = key & 7;
      if (wire === 0) {
        const v = varint();
        if (field === 1) info.irVersion = v;
        else if (field === 5) info.modelVersion = v;
      } else if (wire === 2) {
        const len = varint();
        const end = pos + len;
        if (end > bytes.length) return undefined;
        if (field === 2) info.producerName = decoder.decode(bytes.subarray(pos, end));
        else if (field === 3) info.producerVersion = decoder.decode(bytes.subarray(pos, end));
        else if (field === 4) info.domain = decoder.decode(bytes.subarray(pos, end));
        else if (field === 8) info.opsets.push(readOpset(bytes.subarray(pos, end), decoder));
        pos = end;
      } else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else return undefined;
    }
  } catch {
    return undefined;
  }
  return pos === bytes.length ? info : undefined;
}

/** OperatorSetIdProto: domain = 1 (string), version = 2 (int64). */
function readOpset(bytes: Uint8Array, decoder: TextDecoder): string {
  const nested = readFields(bytes);
  const domain = nested.strings.get(1);
  const version = nested.ints.get(2);
  return `${domain === undefined || domain === '' ? 'ai.onnx' : domain}:${version ?? '?'}`;

  function readFields(b: Uint8Array) {
    const strings = new Map<number, string>();
    const ints = new Map<number, number>();
    let p = 0;
    const vi = (): number => {
      let r = 0;
      let s = 0;
      for (;;) {
        if (p >= b.length) throw new RangeError('truncated varint');
        const x = b[p++] as number;
        r += (x & 0x7f) * 2 ** s;
        if ((x & 0x80) === 0) return r;
        s += 7;
      }
    };
    while (p < b.length) {
      const key = vi();
      const wire = key & 7;
      if (wire === 0) ints.set(Math.floor(key / 8), vi());
      else if (wire === 2) {
        const len = vi();
        strings.set(Math.floor(key / 8), decoder.decode(b.subarray(p, p + len)));
        p += len;
      } else throw new RangeError('unexpected wire type');
    }
    return { strings, ints };
  }
}
