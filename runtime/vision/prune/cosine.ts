/** Cosine distances 1 - cos(x_i, x_j) between the rows of `x` ([N * C] row-major), [N * N]. */
export function cosineDistances(x: Float32Array, n: number, dim: number): Float64Array {
  const unit = new Float64Array(n * dim);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let c = 0; c < dim; c++) norm += x[i * dim + c]! ** 2;
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let c = 0; c < dim; c++) unit[i * dim + c] = x[i * dim + c]! * inv;
  }
  const d = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let dot = 0;
      for (let c = 0; c < dim; c++) dot += unit[i * dim + c]! * unit[j * dim + c]!;
      d[i * n + j] = d[j * n + i] = 1 - dot;
    }
  }
  return d;
}
