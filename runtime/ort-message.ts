// onnxruntime's errors carry what a user needs in the middle of text meant for its developers:
// ANSI colours and a log prefix when they come from its logger, the C++ source location and
// function signature, status codes. This keeps the part that names the problem, on one line.

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;
const LOG_PREFIX = /^\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[[A-Z]:onnxruntime:[^\]]*\]\s*/;
const STATUS_PREFIX = /^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*/;
const LOAD_PREFIX = /^Load model from .*? failed:\s*/;
const SOURCE_LOCATION = /\S+\.(?:cc|cpp|h):\d+ /;
const KERNEL_FAILURE = /^Non-zero status code returned while running (\S+) node\. Name:'([^']*)' Status Message:\s*/;

/** The message of an onnxruntime error, as one line without colours, log prefixes or C++ locations. */
export function cleanOrtMessage(error: unknown): string {
  const raw = error instanceof Error ? error.message : String(error);
  const lines = raw
    .replace(ANSI, "")
    .split("\n")
    .map((line) => cleanLine(line.trim()))
    .filter((line) => line.length > 0);
  return [...new Set(lines)].join("; ") || "unknown onnxruntime error";
}

function cleanLine(line: string): string {
  let text = line.replace(LOG_PREFIX, "").replace(STATUS_PREFIX, "").replace(LOAD_PREFIX, "");
  text = dropSourceLocation(text);
  const kernel = KERNEL_FAILURE.exec(text);
  if (kernel) text = `${kernel[1]} node${kernel[2] ? ` '${kernel[2]}'` : ""}: ${text.slice(kernel[0].length)}`;
  return text.trim();
}

/** `.../model.cc:187 onnxruntime::Model::Model(onnx::ModelProto&&, ...) ModelProto does not have a graph.` -> the last part. */
function dropSourceLocation(text: string): string {
  const at = SOURCE_LOCATION.exec(text);
  if (!at) return text;
  let i = at.index + at[0].length;
  // Skip the function signature: a name, then balanced parentheses, then an optional qualifier.
  const open = text.indexOf("(", i);
  if (open < 0 || /\s/.test(text.slice(i, open))) return text.slice(i);
  let depth = 0;
  for (i = open; i < text.length; i++) {
    if (text[i] === "(") depth++;
    else if (text[i] === ")" && --depth === 0) break;
  }
  return text.slice(i + 1).replace(/^\s*(const\s+)?/, "");
}
