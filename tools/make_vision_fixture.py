#!/usr/bin/env python3
"""A minimal vision encoder for pipec's checks: a 4x4 patch embedding (Conv) to 32-wide visual
tokens, pixel_values [B,3,64,64] -> image_features [B,256,32], random weights. Its width differs
from examples/models/shapes-vlm's decoder (64), which test/dsl/malformed/vlm-shape-mismatch.pipe
relies on.

    python3 tools/make_vision_fixture.py test/fixtures/vision-c32
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
w = numpy_helper.from_array((rng.standard_normal((32, 3, 4, 4)) * 0.1).astype(np.float32), "patch.weight")
shape = numpy_helper.from_array(np.array([0, 32, 256], np.int64), "tokens.shape")
nodes = [
    helper.make_node("Conv", ["pixel_values", "patch.weight"], ["patches"], kernel_shape=[4, 4], strides=[4, 4]),
    helper.make_node("Reshape", ["patches", "tokens.shape"], ["tokens"]),
    helper.make_node("Transpose", ["tokens"], ["image_features"], perm=[0, 2, 1]),
]
graph = helper.make_graph(nodes, "vision-c32",
                          [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch_size", 3, 64, 64])],
                          [helper.make_tensor_value_info("image_features", TensorProto.FLOAT, ["batch_size", 256, 32])],
                          [w, shape])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pipec tools/make_vision_fixture.py")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, f"{out}/vision_encoder.onnx")
json.dump({"do_resize": True, "size": {"height": 64, "width": 64}, "do_rescale": True, "rescale_factor": 1 / 255,
           "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
          open(f"{out}/preprocessor_config.json", "w"), indent=2)
