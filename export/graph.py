"""One clean-up for both frameworks' ONNX graphs: constant folding, a few exact rewrites,
the project's input/output names, metadata, and the full checker.

torch's dynamo exporter and paddle2onnx express the same layers differently (paddle2onnx:
flatten as Shape/Slice/Concat/Reshape, Linear as MatMul + Add, `x * 1.0` from paddle's scale
op). After `clean`, both give the same node count for every variant (docs/DEPLOY.md).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .metadata import BATCH, EXPORTED_OPS, INPUT_NAME, OUTPUT_NAME, ModelInfo


class GraphError(RuntimeError):
    """The exporter's graph is not what this project exports."""


def fold(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxscript's optimizer: constant folding, dead-node and unused-initializer removal."""
    import onnxscript.optimizer

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # it logs every fold and every skipped fold, through loggers that set their own levels
    try:
        return onnxscript.optimizer.optimize(model)
    finally:
        logging.disable(previous)


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in graph.initializer}


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    uses: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            uses.setdefault(name, []).append(node)
    return uses


def _rename_input(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def drop_identities(model: onnx.ModelProto) -> int:
    """Remove `x * 1` and `x + 0` with a scalar constant (paddle's scale op exports both): exact."""
    graph, consts, outputs = model.graph, _constants(model.graph), {o.name for o in model.graph.output}
    dropped = 0
    for node in list(graph.node):
        if node.op_type not in ("Mul", "Add") or node.output[0] in outputs:
            continue
        neutral = 1.0 if node.op_type == "Mul" else 0.0
        for keep, const in ((0, 1), (1, 0)):
            value = consts.get(node.input[const])
            if value is not None and value.size == 1 and value.ndim <= 1 and float(value.reshape(())) == neutral:
                _rename_input(graph, node.output[0], node.input[keep])
                graph.node.remove(node)
                dropped += 1
                break
    return dropped


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {name: node for node in graph.node for name in node.output}


def batch_reshapes(model: onnx.ModelProto) -> int:
    """Reshape(x, Concat(Slice(Shape(x), 0, 1), C)) (paddle's flatten) -> Reshape(x, [0, C...]):
    ONNX's 0 copies the batch axis, so the same result without computing the shape."""
    graph, consts, made, done = model.graph, _constants(model.graph), _producers(model.graph), 0
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] in consts or any(a.name == "allowzero" and a.i for a in node.attribute):
            continue
        concat = made.get(node.input[1])
        if concat is None or concat.op_type != "Concat" or not all(i in consts for i in concat.input[1:]):
            continue
        cut = made.get(concat.input[0])
        if cut is None or cut.op_type != "Slice" or not all(i in consts for i in cut.input[1:]):
            continue
        bounds = [consts[i].tolist() for i in cut.input[1:]]  # starts, ends[, axes[, steps]]
        if bounds[:2] != [[0], [1]] or any(b != [0] for b in bounds[2:3]) or any(b != [1] for b in bounds[3:4]):
            continue
        shape = made.get(cut.input[0])
        if shape is None or shape.op_type != "Shape" or shape.input[0] != node.input[0] or shape.attribute:
            continue
        rest = np.concatenate([consts[i].reshape(-1) for i in concat.input[1:]]).astype(np.int64)
        if 0 in rest or np.count_nonzero(rest == -1) > 1:
            continue  # a 0 there would copy an input axis, not the Concat's value; two -1s are no shape
        name = f"{node.output[0]}_shape"
        graph.initializer.append(numpy_helper.from_array(np.concatenate([[0], rest]).astype(np.int64), name))
        node.input[1] = name
        done += 1
    return done


def conv_biases(model: onnx.ModelProto) -> int:
    """Conv(x, W) + B with constant B of shape (1, out, 1, 1) -> Conv(x, W, B), as torch writes it."""
    graph, consts, uses, done = model.graph, _constants(model.graph), _consumers(model.graph), 0
    for node in list(graph.node):
        if node.op_type != "Conv" or len(node.input) != 2 or node.input[1] not in consts:
            continue
        users = uses.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "Add":
            continue
        add = users[0]
        bias_name = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        bias, out = consts.get(bias_name), consts[node.input[1]].shape[0]
        if bias is None or bias.shape not in ((1, out, 1, 1), (out, 1, 1)):
            continue
        name = f"{node.output[0]}_bias"
        graph.initializer.append(numpy_helper.from_array(bias.reshape(out), name))
        node.input.append(name)
        node.output[0] = add.output[0]
        graph.node.remove(add)
        done += 1
    return done


def gemms(model: onnx.ModelProto) -> int:
    """MatMul(A, W) + B with A of rank 2 and constant W (in, out), B (out,) -> Gemm(A, W, B),
    the node torch's exporter writes for a Linear layer."""
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    graph, consts, uses, done = model.graph, _constants(model.graph), _consumers(model.graph), 0
    for node in list(graph.node):
        if node.op_type != "MatMul" or ranks.get(node.input[0]) != 2:
            continue
        weight = consts.get(node.input[1])
        users = uses.get(node.output[0], [])
        if weight is None or weight.ndim != 2 or len(users) != 1 or users[0].op_type != "Add":
            continue
        add = users[0]
        bias_name = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        bias = consts.get(bias_name)
        if bias is None or bias.shape != (weight.shape[1],):
            continue
        gemm = helper.make_node("Gemm", [node.input[0], node.input[1], bias_name], [add.output[0]], name=f"{node.name}_gemm")
        graph.node.insert(list(graph.node).index(node), gemm)
        graph.node.remove(node)
        graph.node.remove(add)
        done += 1
    return done


def name_io(model: onnx.ModelProto, info: ModelInfo) -> None:
    """Input `image` [N, C, H, W], output `logits` [N, classes], float32, batch axis named N."""
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise GraphError(f"expected one input and one output, found {len(graph.input)} and {len(graph.output)}")
    old_in, old_out = graph.input[0].name, graph.output[0].name
    if old_in != INPUT_NAME:
        _rename_input(graph, old_in, INPUT_NAME)
        graph.input[0].name = INPUT_NAME
    if old_out != OUTPUT_NAME:
        for node in graph.node:
            for i, name in enumerate(node.output):
                if name == old_out:
                    node.output[i] = OUTPUT_NAME
        graph.output[0].name = OUTPUT_NAME
    for value, dims in ((graph.input[0], [BATCH, info.channels, info.height, info.width]), (graph.output[0], [BATCH, len(info.classes)])):
        tensor = value.type.tensor_type
        if tensor.elem_type != onnx.TensorProto.FLOAT:
            raise GraphError(f"{value.name} is {onnx.TensorProto.DataType.Name(tensor.elem_type)}, not FLOAT")
        tensor.shape.Clear()
        for d in dims:
            if isinstance(d, str):
                tensor.shape.dim.add().dim_param = d
            else:
                tensor.shape.dim.add().dim_value = d


def clean(raw: bytes, info: ModelInfo) -> onnx.ModelProto:
    """The exporter's bytes -> the file this project ships.

    Raises:
        GraphError: the graph is unusable (one line).
        onnx.checker.ValidationError: the checker rejects it.
    """
    try:
        model = onnx.load_from_string(raw)
    except Exception as e:  # protobuf's DecodeError and friends
        raise GraphError(f"the exporter's output is not an ONNX model ({type(e).__name__})") from None
    model = fold(model)
    del model.graph.value_info[:]  # stale after the rewrites; the checker infers afresh
    rewrites = drop_identities(model) + batch_reshapes(model) + conv_biases(model) + gemms(model)
    if rewrites:
        model = fold(model)
    del model.graph.value_info[:]
    if unknown := sorted({n.op_type for n in model.graph.node} - EXPORTED_OPS):
        raise GraphError(
            f"the exporter wrote {', '.join(unknown)}, not in export.metadata.EXPORTED_OPS: add it there if it is safe to serve (no subgraph, no "
            f"data-dependent size)"
        )
    name_io(model, info)
    model.doc_string = f"lenet-parity {info.variant} ({info.framework} {info.framework_version}, {info.source})"
    del model.metadata_props[:]
    for key, value in info.props().items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    return model


def node_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Nodes by op type, and the total under 'total'."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return {"total": len(model.graph.node), **dict(sorted(counts.items()))}
