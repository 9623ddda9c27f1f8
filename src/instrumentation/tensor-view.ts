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
