import type { OptionSpec, OptionValue } from "../../graph/pass-manager/registry.ts";

/**
 * A sparse-attention pass's `kv_append_only`: where the model allows, a .pipe request makes the
 * cache append-only too, so no layer concatenates it and the sparse layers read only their
 * selected past rows (bench/README.md, sparse section).
 */
export const SPARSE_APPEND_ONLY: Readonly<Record<string, OptionSpec & { lowered: OptionValue }>> = {
  kv_append_only: {
    type: "boolean",
    description: "then rewrite to the append-only KV contract (kv-append-only) where the model allows: sparse layers read only the selected past rows, no cache Concat",
    default: false,
    lowered: true,
  },
};
