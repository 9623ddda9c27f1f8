/** The parts of a tensor (onnxruntime `Tensor`, tfjs `Tensor`) an instrumentation reads. */
export interface TensorLike {
  /** onnxruntime: `type`; tfjs: `dtype`. */
  type?: string;
  dtype?: string;
  /** onnxruntime: `dims`; tfjs: `shape`. */
  dims?: readonly number[];
  shape?: readonly number[];
}

/** The dtype of a tensor-like value, or `unknown`. */
export function dtypeOf(t: TensorLike | undefined): string {
  return t?.type ?? t?.dtype ?? 'unknown';
}

/** The shape of a tensor-like value as `d1xd2` (the registry's shape notation); `?` when unknown. */
export function shapeOf(t: TensorLike | undefined): string {
  const dims = t?.dims ?? t?.shape;
  return Array.isArray(dims) ? dims.join('x') || 'scalar' : '?';
}

/** Numbers of a typed array as plain JSON values (bigints become decimal strings). */
export function plainValues(data: unknown): unknown {
  if (data instanceof BigInt64Array || data instanceof BigUint64Array)
    return Array.from(data, (v) => v.toString());
  if (ArrayBuffer.isView(data) && !(data instanceof DataView))
    return Array.from(data as unknown as ArrayLike<number>);
  if (Array.isArray(data)) return data;
  return null;
}

/** Past this, the JSON-safe copy truncates a string: such names take the general path. */
const MAX_PLAIN_STRING = 65_536;

/**
 * The canonical JSON (RFC 8785) of a tensors view — `{ <name>: { data, dims, type } }` as the
 * instrumentations build it with {@link plainValues} — written straight from the tensors, without copying
 * their values into arrays first: what the input digest of every instrumented inference hashes.
 * Byte-identical to canonicalizing the JSON-safe copy of the view (a property test checks it); returns
 * undefined for anything unusual (values that are not typed arrays, odd dims or names, throwing getters),
 * which then takes that general path.
 *
 * @param entries the named tensors, in any order (members are written sorted, as RFC 8785 requires)
 * @param read how to get a tensor's dims, dtype and data (onnxruntime: `dims`, `type`, `data`)
 */
export function canonicalTensorsJson<T>(
  entries: readonly (readonly [string, T])[],
  read: { dims(t: T): unknown; type(t: T): unknown; data(t: T): unknown },
): string | undefined {
  try {
    const sorted =
      entries.length < 2 ? entries : [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    let out = '{';
    for (let i = 0; i < sorted.length; i++) {
      const [name, t] = sorted[i];
      // A member named __proto__ cannot be a member of the view object; duplicate names cannot exist either.
      if (name.length > MAX_PLAIN_STRING || name === '__proto__') return undefined;
      if (i > 0) {
        if (name === sorted[i - 1][0]) return undefined;
        out += ',';
      }
      const data = valuesJson(read.data(t));
      const dims = dimsJson(read.dims(t));
      const type = read.type(t);
      if (data === undefined || dims === undefined || typeof type !== 'string') return undefined;
      if (type.length > MAX_PLAIN_STRING) return undefined;
      out += `${JSON.stringify(name)}:{"data":${data},"dims":${dims},"type":${JSON.stringify(type)}}`;
    }
    return `${out}}`;
  } catch {
    return undefined;
  }
}

/** `[n,…]` for dims of finite numbers, `null` for none; undefined otherwise (general path). */
function dimsJson(dims: unknown): string | undefined {
  if (dims === undefined || dims === null) return 'null';
  if (!Array.isArray(dims)) return undefined;
  let out = '[';
  for (let i = 0; i < dims.length; i++) {
    const d = dims[i];
    if (typeof d !== 'number' || !Number.isFinite(d)) return undefined;
    out += i === 0 ? String(d) : `,${d}`;
  }
  return `${out}]`;
}

/**
 * A typed array's values as the JSON-safe copy writes them: finite numbers as JSON numbers, NaN and
 * ±Infinity as strings, 64-bit integers as decimal strings; `null` when there is no data; undefined for
 * plain arrays and anything else (general path).
 */
function valuesJson(data: unknown): string | undefined {
  if (data === undefined || data === null) return 'null';
  if (!ArrayBuffer.isView(data) || data instanceof DataView) {
    return Array.isArray(data) ? undefined : 'null';
  }
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    let out = '[';
    for (let i = 0; i < data.length; i++) out += i === 0 ? `"${data[i]}"` : `,"${data[i]}"`;
    return `${out}]`;
  }
  const values = data as unknown as ArrayLike<number>;
  let out = '[';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    // String(v) is JSON's number form for finite values; the others are recorded as strings.
    const s = Number.isFinite(v) ? String(v) : `"${v}"`;
    out += i === 0 ? s : `,${s}`;
  }
  return `${out}]`;
}
