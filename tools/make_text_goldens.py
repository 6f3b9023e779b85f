"""Writes the golden files of the ONNX text form: small models built with onnx.helper, each saved as
.onnx beside the text `onnx.printer.to_text` prints for it (.txt). test/ir-text.test.ts checks that
pipec's printer writes exactly that text and that its parser reads it back into the same model.

    pip install onnx numpy   # the goldens were made with onnx 1.23.1
    python tools/make_text_goldens.py

Each model exercises a different part of the syntax; all are small enough to read in a review.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "text")


def mlp():
    """Symbolic dims, quoted names, an omitted optional input, a com.microsoft node, value_info,
    model metadata. Runs in onnxruntime (the test compares the parsed model's outputs)."""
    x = helper.make_tensor_value_info("x", T.FLOAT, ["B", "S", 4])
    y = helper.make_tensor_value_info("y", T.FLOAT, ["B", "S", 3])
    w = numpy_helper.from_array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3), "onnx::MatMul_1")
    b = numpy_helper.from_array(np.array([0.1, -0.25, 1e-05], dtype=np.float32), "/layer/bias")
    lo = numpy_helper.from_array(np.array(-0.5, dtype=np.float32), "lo")
    nodes = [
        helper.make_node("MatMul", ["x", "onnx::MatMul_1"], ["/layer/MatMul_output_0"], name="/layer/MatMul"),
        helper.make_node("Add", ["/layer/MatMul_output_0", "/layer/bias"], ["h"], name="add0"),
        helper.make_node("Clip", ["h", "lo", ""], ["clipped"]),
        helper.make_node("FastGelu", ["clipped"], ["g"], domain="com.microsoft"),
        helper.make_node("Softmax", ["g"], ["y"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "mlp", [x], [y], [w, b, lo],
        value_info=[helper.make_tensor_value_info("h", T.FLOAT, ["B", "S", 3]), helper.make_tensor_value_info("g", T.FLOAT, None)],
    )
    model = helper.make_model(
        graph, ir_version=10, producer_name="make_text_goldens", doc_string="a tiny MLP",
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)],
    )
    helper.set_model_props(model, {"purpose": "golden"})
    return model


def attributes():
    """Every plain attribute kind, a tensor attribute, omitted optional outputs, an overload, an
    empty node name."""
    nodes = [
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array([[1, 2]], dtype=np.int64), "tv")),
        helper.make_node("Constant", [], ["unnamed"], value=numpy_helper.from_array(np.array([1.5], dtype=np.float32))),
        helper.make_node(
            "CustomAttrs", ["x", "", "c"], ["y", ""], name="custom node", domain="pipec.test",
            i=-7, f=1.5, s='quote " and \\ backslash', ints=[1, -2, 3], floats=[0.5, 1e-07, 100000.0], strings=["a", "b"],
        ),
        helper.make_node("Overloaded", ["y"], ["z0"], domain="pipec.test", overload="v2"),
        helper.make_node("Identity", ["z0"], ["z"]),
    ]
    nodes[-1].name = ""  # present but empty: printed as [""]
    graph = helper.make_graph(
        nodes, "attributes", [helper.make_tensor_value_info("x", T.FLOAT, ["N", "seq len"])], [helper.make_tensor_value_info("z", T.FLOAT, None)],
    )
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("pipec.test", 1)])


def control_flow():
    """If with branches that read outer values, a branch with its own initializer, a nested If,
    and a Loop."""
    two = numpy_helper.from_array(np.array([2.0], dtype=np.float32), "two")
    inner_then = helper.make_graph([helper.make_node("Identity", ["t"], ["it"])], "inner_then", [], [helper.make_tensor_value_info("it", T.FLOAT, None)])
    inner_else = helper.make_graph([helper.make_node("Neg", ["t"], ["ie"])], "inner_else", [], [helper.make_tensor_value_info("ie", T.FLOAT, None)])
    then_g = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "two"], ["t"]),
            helper.make_node("If", ["c"], ["tt"], then_branch=inner_then, else_branch=inner_else),
        ],
        "then_body", [], [helper.make_tensor_value_info("tt", T.FLOAT, ["N"])], [two],
    )
    else_g = helper.make_graph([helper.make_node("Sub", ["x", "x"], ["e"])], "else_body", [], [helper.make_tensor_value_info("e", T.FLOAT, ["N"])])
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["acc", "r"], ["acc_out"]),
        ],
        "loop_body",
        [
            helper.make_tensor_value_info("iter", T.INT64, []),
            helper.make_tensor_value_info("cond_in", T.BOOL, []),
            helper.make_tensor_value_info("acc", T.FLOAT, ["N"]),
        ],
        [helper.make_tensor_value_info("cond_out", T.BOOL, []), helper.make_tensor_value_info("acc_out", T.FLOAT, ["N"])],
    )
    nodes = [
        helper.make_node("If", ["c"], ["r"], name="branch", then_branch=then_g, else_branch=else_g),
        helper.make_node("Loop", ["trips", "", "x"], ["y"], body=body),
    ]
    graph = helper.make_graph(
        nodes, "control_flow",
        [helper.make_tensor_value_info("c", T.BOOL, []), helper.make_tensor_value_info("x", T.FLOAT, ["N"]), helper.make_tensor_value_info("trips", T.INT64, [])],
        [helper.make_tensor_value_info("y", T.FLOAT, ["N"])],
    )
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 21)])


def functions():
    """A model-local function with attributes (one referenced with @) called from the graph."""
    fn = helper.make_function(
        "pipec.local", "ScaledRelu", ["a"], ["out"],
        [
            helper.make_node("Relu", ["a"], ["r"]),
            helper.make_node("Constant", [], ["k"], value_float=2.0),
            helper.make_node("Mul", ["r", "k"], ["m"]),
            helper.make_node("LeakyRelu", ["m"], ["out"]),
        ],
        [helper.make_opsetid("", 21)],
        attributes=["alpha"],
    )
    ref = onnx.AttributeProto(name="alpha", ref_attr_name="alpha", type=onnx.AttributeProto.FLOAT)
    fn.node[3].attribute.append(ref)
    graph = helper.make_graph(
        [helper.make_node("ScaledRelu", ["x"], ["y"], domain="pipec.local", alpha=0.2)],
        "uses_function", [helper.make_tensor_value_info("x", T.FLOAT, [2, "D"])], [helper.make_tensor_value_info("y", T.FLOAT, [2, "D"])],
    )
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("pipec.local", 1)], functions=[fn])


def dtypes():
    """One initializer per element type the printer writes values for, with awkward floats."""
    arrays = {
        "f32": np.array([0.0, -0.0, 1.0, 0.1, 1 / 3, 1e-05, 0.0001, 0.001, 100000.0, 123456.0, 1e16, 3.4028235e38, np.nan, np.inf, -np.inf], dtype=np.float32),
        "f64": np.array([0.1, 1e100, -2.5e-300], dtype=np.float64),
        "f16": np.array([1.5, -2.0, 65504.0], dtype=np.float16),
        "i8": np.array([-128, 127], dtype=np.int8),
        "u8": np.array([0, 255], dtype=np.uint8),
        "i16": np.array([-32768, 32767], dtype=np.int16),
        "u16": np.array([65535], dtype=np.uint16),
        "i32": np.array([-(2**31), 2**31 - 1], dtype=np.int32),
        "u32": np.array([2**32 - 1], dtype=np.uint32),
        "i64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
        "u64": np.array([2**64 - 1], dtype=np.uint64),
        "flag": np.array([True, False, True], dtype=np.bool_),
        "scalar": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    inits = [numpy_helper.from_array(a, name) for name, a in arrays.items()]
    inits.append(helper.make_tensor("bf16", T.BFLOAT16, [2], [1.0, -3.0]))
    inits.append(helper.make_tensor("words", T.STRING, [2], [b"hello", b'say "hi"']))
    inits.append(helper.make_tensor("typed_f32", T.FLOAT, [2], [0.5, 2.0]))  # float_data, not raw_data
    graph = helper.make_graph(
        [helper.make_node("Identity", ["f32"], ["y"])], "dtypes", [], [helper.make_tensor_value_info("y", T.FLOAT, [15])], inits,
    )
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 21)])


def handwritten():
    """Text written by hand in the documented syntax (handwritten.source.txt), read by onnx.parser:
    checks that pipec's parser reads the forms the printer never writes (untyped attributes,
    attributes after the inputs, comments, spaces) as onnx does."""
    with open(os.path.join(OUT, "handwritten.source.txt"), encoding="utf-8") as f:
        return onnx.parser.parse_model(f.read())


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, build in [("mlp", mlp), ("attributes", attributes), ("control_flow", control_flow), ("functions", functions), ("dtypes", dtypes), ("handwritten", handwritten)]:
        model = build()
        onnx.save(model, os.path.join(OUT, f"{name}.onnx"))
        with open(os.path.join(OUT, f"{name}.txt"), "w", encoding="utf-8", newline="\n") as f:
            f.write(onnx.printer.to_text(model))
        print(f"wrote {name}.onnx and {name}.txt")


if __name__ == "__main__":
    main()
