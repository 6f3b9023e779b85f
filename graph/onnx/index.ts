/** Model I/O: read and write .onnx files (with external data) to and from the IR. */
export { loadModel, loadModelFromBytes, type LoadOptions } from "./load.ts";
export { saveModel, type ExternalDataOptions, type ExternalFileMode, type ExternalFileReport, type SaveOptions, type SaveReport } from "./save.ts";
