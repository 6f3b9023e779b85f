/** ONNX's textual syntax for the IR: print a model for reading and diffing, parse it back. */
export { ElidedTensor } from "./elided-tensor.ts";
export { parseModel } from "./parse.ts";
export { printGraph, printModel, printType, type PrintOptions, type WeightsMode } from "./printer.ts";
