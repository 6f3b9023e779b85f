import type { MethodDefinition } from "./method.ts";
import { keepOf } from "./params.ts";

// Visual token pruning runs in the runtime between the vision encoder and the decoder (runtime/vision/prune/).
export const GLOBALCOM2: MethodDefinition = {
  slot: "prune",
  name: "globalcom2",
  doc: "GlobalCom2: a thumbnail and grid x grid crops are encoded; the thumbnail's [CLS] attention sets each crop's budget and guides which tokens stay",
  lossy: true,
  params: {
    keep: { type: { kind: "budget" }, default: { percent: 25 }, doc: "visual tokens kept (the retention ratio)" },
    grid: { type: { kind: "int", min: 2 }, default: 2, doc: "crops per image side" },
  },
  lowering: { level: "runtime" },
  runtime: { prune: (p) => ({ method: "globalcom2", keep: keepOf(p["keep"]!), grid: p["grid"] as number }) },
};
