// The export matrix (tools/export_matrix.py): real exports of tiny models, one folder each with
// model.onnx and expected.json (test/fixtures/export-matrix/README.md).
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

export const MATRIX_DIR = join(import.meta.dirname, "..", "fixtures", "export-matrix");
export const HAVE_MATRIX = existsSync(MATRIX_DIR);

/** What every fixture's expected.json says of where it came from and what pipec should find. */
export interface MatrixExpected {
  arch: string;
  impl: string;
  exporter: string;
  optimiser?: string | null;
  expected_attention_layers: number;
}

/** The fixture folders holding both files, sorted (none when the matrix is absent). */
export function matrixFixtures(): string[] {
  if (!HAVE_MATRIX) return [];
  return readdirSync(MATRIX_DIR, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(MATRIX_DIR, e.name, "model.onnx")) && existsSync(join(MATRIX_DIR, e.name, "expected.json")))
    .map((e) => e.name)
    .sort();
}
