import { create } from "@bufbuild/protobuf";
import { PipecError } from "../../errors.ts";
import { TensorProtoSchema } from "../../onnx/generated/onnx_pb.ts";
import { Tensor } from "../tensor.ts";

/**
 * A weight parsed from text whose values were left out (`<sha:…>` or `<elided>`): it has a name,
 * an element type and a shape, and prints the same way again, but has no data. Anything that
 * needs the bytes (saving, running, constant folding) gets a PipecError instead of a model with
 * silently missing weights.
 */
export class ElidedTensor extends Tensor {
  /** The content hash printed for it, if the text had one. */
  readonly hash: string | undefined;

  constructor(name: string, dtype: number, dims: readonly number[], hash?: string) {
    super(create(TensorProtoSchema, { name, dataType: dtype, dims: dims.map(BigInt) }));
    this.hash = hash;
  }

  override get dataInProto(): boolean {
    return false;
  }

  override get ownBytes(): Uint8Array | undefined {
    return this.missing();
  }

  override bytes(): Uint8Array {
    return this.missing();
  }

  override contentHash(): string {
    return this.hash ?? this.missing();
  }

  private missing(): never {
    throw new PipecError(
      "elided-weights",
      `tensor '${this.name}' was parsed from text with its values left out; print the model with weights: "values" to get a runnable model`,
    );
  }
}
