"""The ONNX export: the forward pass as one graph, built with `onnx.helper`
(no torch needed to export), opset 17, IR version 8.

    inputs   ids (int64, T x B), h0 (float32, L x B x H)
    outputs  logits (float32, T x B x V), h (float32, L x B x H), T and B dynamic

Gather of the embedding E = U^T; per layer the ONNX `RNN` operator (forward,
Tanh) with W = the input weights, R = the recurrent weights, B = [input
bias, 0] and initial_h = h0[k]; `Squeeze` of its Y's direction axis feeds
the layer above; MatMul and Add make the logits; `Concat` of each layer's
Y_h is h. The vocabulary and configuration are the model's metadata_props
(`mapping.metadata`). Float32 whatever the model's dtype (ONNX Runtime's RNN
runs float32 alone). Needs onnx (`rnn_gpu[export]`), imported here alone.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__
from ..checkpoint import Checkpoint
from ..errors import UsageError
from ..fileio import atomic_write
from .mapping import float32_bytes, metadata, require, sizes, standard_layers

OPSET = 17
IR_VERSION = 8  # the IR of opset 17: ONNX Runtime 1.12 and later read it
MAX_BYTES = 2**31 - 2**24  # one protobuf holds under 2 GiB; leave room for the graph


def onnx_model(ckpt: Checkpoint):
    """The checked `onnx.ModelProto`."""
    onnx = require("onnx", "exporting to onnx")
    from onnx import TensorProto, helper, numpy_helper

    if float32_bytes(ckpt.params) > MAX_BYTES:
        raise UsageError(f"the model's {float32_bytes(ckpt.params)} bytes of float32 parameters are more than one "
                         f"ONNX file holds (2 GiB); export it to safetensors or torch")
    V, H, L = sizes(ckpt)
    embedding, layers, (weight, bias) = standard_layers(ckpt.params, np.float32)
    inits = [numpy_helper.from_array(embedding, "embedding"), numpy_helper.from_array(np.array([1], np.int64), "axis1"),
             numpy_helper.from_array(np.ascontiguousarray(weight.T), "output_weight_T"),
             numpy_helper.from_array(bias, "output_bias")]
    nodes = [helper.make_node("Gather", ["embedding", "ids"], ["x1"], axis=0, name="embedding")]
    x, finals = "x1", []
    for k, (W_ih, W_hh, b_ih, b_hh) in enumerate(layers, start=1):
        inits += [numpy_helper.from_array(W_ih[None], f"W{k}"), numpy_helper.from_array(W_hh[None], f"R{k}"),
                  numpy_helper.from_array(np.concatenate([b_ih, b_hh])[None], f"B{k}"),
                  numpy_helper.from_array(np.array([k - 1], np.int64), f"index{k}")]
        nodes += [helper.make_node("Gather", ["h0", f"index{k}"], [f"h0_{k}"], axis=0, name=f"h0_of_layer{k}"),
                  helper.make_node("RNN", [x, f"W{k}", f"R{k}", f"B{k}", "", f"h0_{k}"], [f"Y{k}", f"h{k}"],
                                   hidden_size=H, activations=["Tanh"], direction="forward", name=f"layer{k}"),
                  helper.make_node("Squeeze", [f"Y{k}", "axis1"], [f"y{k}"], name=f"states_of_layer{k}")]
        x = f"y{k}"
        finals.append(f"h{k}")
    nodes += [helper.make_node("Concat", finals, ["h"], axis=0, name="last_states"),
              helper.make_node("MatMul", [x, "output_weight_T"], ["Vh"], name="output"),
              helper.make_node("Add", ["Vh", "output_bias"], ["logits"], name="output_bias")]
    graph = helper.make_graph(
        nodes, "rnn_gpu", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["T", "B"]),
                           helper.make_tensor_value_info("h0", TensorProto.FLOAT, [L, "B", H])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["T", "B", V]),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, [L, "B", H])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="rnn_gpu", producer_version=__version__,
                              doc_string=f"rnn_gpu's {L}-layer vanilla RNN over {V} symbols, hidden size {H}: "
                                         "ids (T, B), h0 (L, B, H) -> logits (T, B, V), h (L, B, H)")
    helper.set_model_props(model, metadata(ckpt, "onnx", np.float32))
    onnx.checker.check_model(model)
    return model


def write_onnx(ckpt: Checkpoint, output: Path) -> None:
    data = onnx_model(ckpt).SerializeToString()
    atomic_write(Path(output), lambda f: f.write(data))
