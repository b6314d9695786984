"""Kokoro's quantized 1-D convolutions rewritten as int8 matrix products ONNX Runtime runs fast on a CPU.

The shipped graph was dynamically quantized: each Conv became DynamicQuantizeLinear → ConvInteger (uint8
activations × uint8 weights) → + quantized bias → Cast → × scale. ONNX Runtime's ConvInteger takes a slow
path for uint8 weights: profiled on the 2-core VM (Xeon with AVX-512 VNNI and AMX) it was 58% of a
sentence's time and no faster than the same convolutions in float32, which sit near the cores' float peak.
Its MatMulInteger with uint8 × int8 runs on the VNNI/AMX kernels, ~8× faster (1.5 vs 0.19 TOPS for one
decoder layer's product). So each such convolution becomes: the already quantized input laid out time-major,
padded with its zero point, its K dilated shifts side by side (im2col) → MatMulInteger with the weights
requantized to symmetric int8 per output channel → × (input scale × channel scale) + float bias → back to
channels-first. Same arithmetic as ConvInteger up to the weights' rounding (the speaker model hears the
result 0.99 alike). Sentence RTF on the VM 0.40 → 0.23.

Without VNNI, x86 int8 kernels add pairs of uint8 × int8 products in int16 and can saturate; there the
weights keep 7 bits (as ONNX Runtime's own `reduce_range`).
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

_NO_END = 2**62  # a Slice end past any length

def weight_levels() -> int:
    """127 where the CPU adds int8 products without int16 saturation (VNNI, AMX), else 63."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return 63
    return 127 if ("vnni" in flags or "amx_int8" in flags) else 63


def convs_as_matmuls(model, levels: int | None = None) -> int:
    """Rewrite `model` (an onnx ModelProto, in place) as the module docstring says; the number of convolutions
    rewritten. Convolutions of any other shape (grouped, strided, 2-D, no scale chain) are left as they are."""
    levels = levels or weight_levels()
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    initializers = {init.name: init for init in graph.initializer}
    added: list = []
    replaced: dict[int, list] = {}  # id of the chain's last node → the nodes standing in for the chain
    dropped: set[int] = set()
    for node in graph.node:
        if node.op_type != "ConvInteger":
            continue
        found = _chain(node, producer, consumers, initializers)
        if found is None:
            continue
        chain, weight, bias, input_scale = found
        replaced[id(chain[-1])] = _as_matmul(node, weight, bias, input_scale, chain[-1].output[0], levels, added)
        dropped.update(id(n) for n in chain)
    if not replaced:
        return 0
    nodes = []
    for node in graph.node:
        if id(node) in replaced:
            nodes.extend(replaced[id(node)])
        elif id(node) not in dropped:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(added)
    _drop_unused(graph)
    return len(replaced)


def _chain(conv, producer, consumers, initializers):
    """(nodes from ConvInteger to the scaling Mul, float weights (Cout, Cin, K), float bias or None, the input
    scale's name) for the dynamic-quantization pattern, or None for anything else."""
    from onnx import helper, numpy_helper

    attributes = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    if (attributes.get("group", 1) != 1 or len(attributes.get("kernel_shape", [])) != 1
            or any(s != 1 for s in attributes.get("strides", [1])) or len(conv.input) != 4):
        return None
    _, weight_name, _, weight_zero = conv.input
    if weight_name not in initializers or weight_zero not in initializers:
        return None

    def value(name):
        return numpy_helper.to_array(initializers[name])

    def only_consumer(name, op_type):
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None

    chain, bias = [conv], None
    step = consumers.get(conv.output[0], [])
    if len(step) == 1 and step[0].op_type == "Add":  # + bias quantized at run time: Reshape(Cast(Floor(bias / s)))
        add = step[0]
        try:
            reshape = producer[add.input[1]]
            divide = producer[producer[producer[reshape.input[0]].input[0]].input[0]]
            bias = value(divide.input[0]).astype(np.float32)
        except KeyError:
            return None
        chain.append(add)
    cast = only_consumer(chain[-1].output[0], "Cast")
    if cast is None:
        return None
    scale = only_consumer(cast.output[0], "Mul")
    if scale is None or scale.input[1] not in producer or producer[scale.input[1]].op_type != "Mul":
        return None
    input_scale, weight_scale = producer[scale.input[1]].input
    if weight_scale not in initializers:
        return None
    weight = (value(weight_name).astype(np.float32) - value(weight_zero).astype(np.float32)) * value(weight_scale)
    if weight.ndim != 3 or (bias is not None and bias.shape != (weight.shape[0],)):
        return None
    return [*chain, cast, scale], weight.astype(np.float32), bias, input_scale


def _as_matmul(conv, weight: np.ndarray, bias, input_scale: str, output: str, levels: int, added: list) -> list:
    from onnx import TensorProto, helper, numpy_helper

    attributes = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    quantized, zero = conv.input[0], conv.input[2]
    out_channels, in_channels, kernel = weight.shape
    dilation = attributes.get("dilations", [1])[0]
    before, after = attributes.get("pads", [0, 0])
    channel_scale = np.maximum(np.abs(weight).reshape(out_channels, -1).max(axis=1), 1e-12) / levels
    levels_of = np.clip(np.round(weight / channel_scale[:, None, None]), -levels, levels).astype(np.int8)
    columns = levels_of.transpose(2, 1, 0).reshape(kernel * in_channels, out_channels)  # row k·Cin + c
    prefix = conv.name or conv.output[0]

    def constant(suffix: str, array) -> str:
        added.append(numpy_helper.from_array(np.asarray(array), f"{prefix}/mm_{suffix}"))
        return f"{prefix}/mm_{suffix}"

    def name(suffix: str) -> str:
        return f"{prefix}/mm_{suffix}"

    nodes = [helper.make_node("Transpose", [quantized], [name("time_major")], perm=[0, 2, 1])]
    source = name("time_major")
    if before or after:
        pads = constant("pads", np.array([0, before, 0, 0, after, 0], np.int64))
        nodes.append(helper.make_node("Pad", [source, pads, zero], [name("padded")]))  # pad = the zero point
        source = name("padded")
    if kernel > 1:  # row t of the columns: input rows t, t + d, …, t + (K-1)·d side by side (K Slices and a
        span = dilation * (kernel - 1)  # Concat measured 10% faster than one Gather of the windows)
        shifts = []
        for k in range(kernel):
            end = k * dilation - span
            nodes.append(helper.make_node("Slice", [
                source, constant(f"start{k}", np.array([k * dilation], np.int64)),
                constant(f"end{k}", np.array([end if end else _NO_END], np.int64)),
                constant(f"axis{k}", np.array([1], np.int64))], [name(f"shift{k}")]))
            shifts.append(name(f"shift{k}"))
        nodes.append(helper.make_node("Concat", shifts, [name("columns")], axis=2))
        source = name("columns")
    nodes += [
        helper.make_node("MatMulInteger", [source, constant("weight", columns), zero], [name("sum")]),
        helper.make_node("Cast", [name("sum")], [name("sum_float")], to=TensorProto.FLOAT),
        helper.make_node("Mul", [input_scale, constant("channel_scale", channel_scale.astype(np.float32))],
                         [name("scale")]),
        helper.make_node("Mul", [name("sum_float"), name("scale")], [name("scaled")]),
    ]
    last = name("scaled")
    if bias is not None:
        nodes.append(helper.make_node("Add", [last, constant("bias", bias)], [name("biased")]))
        last = name("biased")
    nodes.append(helper.make_node("Transpose", [last], [output], perm=[0, 2, 1]))
    return nodes


def _drop_unused(graph) -> None:
    """Nodes and initializers nothing reads any more (the quantized biases' arithmetic, old weights)."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        kept = [node for node in graph.node if any(out in used for out in node.output)]
        if len(kept) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(kept)
    used = {name for node in graph.node for name in node.input}
    kept_init = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_init)
