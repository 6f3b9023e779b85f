/** Where a command writes: the process's streams in `pipec`, buffers in tests. */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
}

/**
 * A reader that went away (`pipec passes | head`) ends the output quietly, as for other Unix
 * tools, instead of an unhandled EPIPE with a stack.
 */
function exitOnClosedPipe(stream: NodeJS.WriteStream): NodeJS.WriteStream {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") throw e;
    process.exit(process.exitCode ?? 0);
  });
  return stream;
}

let streams: { out: NodeJS.WriteStream; err: NodeJS.WriteStream } | undefined;
const processStreams = () => (streams ??= { out: exitOnClosedPipe(process.stdout), err: exitOnClosedPipe(process.stderr) });

export const processIO: CliIO = {
  out: (text) => void processStreams().out.write(text),
  err: (text) => void processStreams().err.write(text),
};
