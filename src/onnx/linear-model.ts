import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** What {@link buildLinearClassifierOnnx} turns into an ONNX model. */
export interface LinearClassifierSpec {
  /**
   * Coefficients. A flat array (one per feature) is a binary classifier: `sigmoid(x·w + b)`, one output
   * column, the probability of the positive class. A matrix `[feature][class]` is a multinomial classifier:
   * `softmax(x·W + b)`, one column per class.
   */
  weights: readonly number[] | readonly (readonly number[])[];
  /** Intercept: one number (binary) or one per class. */
  bias: number | readonly number[];
  /** Name of the input tensor, `float32 [batch, features]`; default `features`. */
  inputName?: string;
  /** Name of the output tensor, `float32 [batch, columns]`; default `probability`. */
  outputName?: string;
  /** Class labels, stored in the model's metadata (`classes`, comma-separated) for documentation. */
  classes?: readonly string[];
  /** `producer_name` in the model; default `mltrail`. */
  producerName?: string;
  /** `model_version` in the model (an integer). */
  modelVersion?: number;
  /** Free-form description stored as the model's `doc_string`. */
  docString?: string;
}

/** The ONNX opset the builder targets (MatMul, Add, Sigmoid, Softmax are unchanged since opset 13). */
export const LINEAR_CLASSIFIER_OPSET = 13;

/**
 * Encodes a linear (logistic-regression) classifier as ONNX `ModelProto` bytes: `MatMul → Add → Sigmoid`
 * for a binary model, `MatMul → Add → Softmax` for several classes. The bytes load in onnxruntime as they
 * are; write them to a `.onnx` file and register that file so its digest ties predictions to the version.
 * Needs the `onnx-proto` package.
 *
 * @example
 * const bytes = buildLinearClassifierOnnx({ weights: [0.8, -1.2, 0.05], bias: -0.3, inputName: 'features' });
 * writeFileSync('model.onnx', bytes);
 * const session = await ort.InferenceSession.create('model.onnx');
 * const { probability } = await session.run({ features: new ort.Tensor('float32', [1, 2, 3], [1, 3]) });
 */
export function buildLinearClassifierOnnx(spec: LinearClassifierSpec): Uint8Array {
  const matrix = toMatrix(spec.weights);
  const features = matrix.length;
  const columns = matrix[0]?.length ?? 0;
  const binary = !Array.isArray(spec.weights[0]);
  const bias = typeof spec.bias === 'number' ? [spec.bias] : [...spec.bias];
  if (features === 0 || columns === 0)
    throw new RangeError('buildLinearClassifierOnnx: weights must have at least one feature and one class');
  if (bias.length !== columns)
    throw new RangeError(
      `buildLinearClassifierOnnx: bias has ${bias.length} value(s) but the weights have ${columns} column(s)`,
    );
  for (const [i, row] of matrix.entries()) {
    if (row.length !== columns)
      throw new RangeError(
        `buildLinearClassifierOnnx: weights row ${i} has ${row.length} column(s); expected ${columns}`,
      );
    for (const v of row)
      if (!Number.isFinite(v)) throw new RangeError(`buildLinearClassifierOnnx: weights row ${i} has ${v}`);
  }
  for (const v of bias)
    if (!Number.isFinite(v)) throw new RangeError(`buildLinearClassifierOnnx: bias has ${v}`);
  if (spec.classes !== undefined && spec.classes.length !== (binary ? 2 : columns))
    throw new RangeError(
      `buildLinearClassifierOnnx: ${spec.classes.length} class label(s) for a ${binary ? 'binary' : `${columns}-class`} model`,
    );

  const inputName = spec.inputName ?? 'features';
  const outputName = spec.outputName ?? 'probability';
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const tensorType = (dims: (number | string)[]) =>
    onnx.TypeProto.create({
      tensorType: {
        elemType: FLOAT,
        shape: {
          dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        },
      },
    });
  const graph = onnx.GraphProto.create({
    name: 'linear_classifier',
    node: [
      { opType: 'MatMul', input: [inputName, 'W'], output: ['logits_raw'], name: 'matmul' },
      { opType: 'Add', input: ['logits_raw', 'B'], output: ['logits'], name: 'add' },
      binary
        ? { opType: 'Sigmoid', input: ['logits'], output: [outputName], name: 'sigmoid' }
        : {
            opType: 'Softmax',
            input: ['logits'],
            output: [outputName],
            name: 'softmax',
            attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: -1 }],
          },
    ],
    initializer: [
      { name: 'W', dataType: FLOAT, dims: [features, columns], floatData: matrix.flat() },
      { name: 'B', dataType: FLOAT, dims: [columns], floatData: bias },
    ],
    input: [{ name: inputName, type: tensorType(['batch', features]) }],
    output: [{ name: outputName, type: tensorType(['batch', columns]) }],
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: spec.producerName ?? 'mltrail',
    modelVersion: spec.modelVersion,
    docString: spec.docString,
    opsetImport: [{ domain: '', version: LINEAR_CLASSIFIER_OPSET }],
    metadataProps: spec.classes === undefined ? [] : [{ key: 'classes', value: spec.classes.join(',') }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

function toMatrix(weights: LinearClassifierSpec['weights']): number[][] {
  if (weights.length === 0) return [];
  if (Array.isArray(weights[0])) return (weights as readonly (readonly number[])[]).map((r) => [...r]);
  return (weights as readonly number[]).map((w) => [w]);
}
