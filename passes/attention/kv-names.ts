import type { Value } from "../../graph/ir/value.ts";
import { UNKNOWN_LAYER } from "./canonical-node.ts";

/** The KV-cache graph inputs and outputs one layer reads and writes, and the layer they name. */
export interface KvNames {
  layer: number;
  past_key?: string;
  past_value?: string;
  present_key?: string;
  present_value?: string;
}

/**
 * Names the cache around canonical K and V ([B, Hkv, N, D]): the graph outputs they are (present)
 * and the graph inputs their Concat grows (past). The layer index is the number in those names
 * (`past_key_values.3.key`, `present_3`), or UNKNOWN_LAYER when they carry none.
 */
export function kvNames(key: Value, value: Value): KvNames {
  return named({ past_key: pastOf(key), past_value: pastOf(value), present_key: graphOutputName(key), present_value: graphOutputName(value) });
}

/** The same for a fused op, whose cache inputs and outputs are its own operands. */
export function fusedKvNames(cache: { pastKey?: Value; pastValue?: Value; presentKey?: Value; presentValue?: Value }): KvNames {
  return named({
    past_key: graphInputName(cache.pastKey),
    past_value: graphInputName(cache.pastValue),
    present_key: graphOutputName(cache.presentKey),
    present_value: graphOutputName(cache.presentValue),
  });
}

function named(cache: Omit<KvNames, "layer">): KvNames {
  const names: KvNames = { layer: UNKNOWN_LAYER, ...cache };
  for (const name of [names.past_key, names.present_key, names.past_value, names.present_value]) {
    const n = name === undefined ? undefined : layerNumber(name);
    if (n !== undefined) {
      names.layer = n;
      break;
    }
  }
  return names;
}

export function layerNumber(name: string): number | undefined {
  const m = /(?:^|[._/])(\d+)(?:[._/]|$)/.exec(name);
  return m ? Number(m[1]) : undefined;
}

function graphInputName(v: Value | undefined): string | undefined {
  return v?.isGraphInput ? v.name : undefined;
}

function graphOutputName(v: Value | undefined): string | undefined {
  return v?.isGraphOutput ? v.name : undefined;
}

/** The graph input a cache Concat chain starts from (exporters sometimes nest the Concat). */
function pastOf(v: Value): string | undefined {
  let cur: Value | undefined = v;
  while (cur?.producer?.op === "Concat") cur = cur.producer.inputs[0];
  return graphInputName(cur);
}
