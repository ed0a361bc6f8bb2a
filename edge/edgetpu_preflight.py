"""Static Edge TPU pre-flight: which ops of an int8 .tflite ``edgetpu_compiler`` is predicted to map.

No compiler, no TensorFlow: the graph is read with ``struct`` (edge/tflite_graph.py)
and every op, in execution order, is checked against Coral's published
requirements and supported-operations table (edge/edgetpu_ops.json, one rule
per row with its source). The compiler partitions once, so the first op that
cannot map sends it and every later op to the CPU.

It is a prediction: the real compiler has limits Coral does not document
(op versions, tensor sizes); when ``edgetpu_compiler`` is installed, its log
(``edgeinspect export --edgetpu``) is the truth.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

RULES_FILE = Path(__file__).with_name("edgetpu_ops.json")
EDGETPU_OP = "edgetpu-custom-op"
QUANTIZED = ("int8", "uint8")
CONSTANT_TYPES = QUANTIZED + ("int32",)  # int32: biases, shapes, axes, paddings
FUSED = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
GENERAL_CHECKS = {"constant_weights": "constant_parameters"}  # per-op checks of a model-wide requirement


@functools.lru_cache(maxsize=4)
def load_rules(path=RULES_FILE) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _shape(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _big_dims(shape):
    return [d for d in shape if d != 1]


def _role(axis, rank):
    """Axis -> 'z' (channels), 'x', 'y' or 'batch' (Coral names dimensions from the innermost)."""
    return {1: "z", 2: "x", 3: "y"}.get(rank - (axis % rank), "batch") if rank else "z"


def _t(graph, i):
    return graph["tensors"][i]


# Per-op checks named in edgetpu_ops.json: (op, graph) -> why it cannot map, or None.

def _no_fused_activation(op, g):
    act = op["options"].get("fused_activation", 0)
    return f"fused activation {FUSED.get(act, act)}" if act else None


def _same_dilation(op, g):
    w, h = op["options"].get("dilation_w", 1), op["options"].get("dilation_h", 1)
    return f"dilation {h}x{w} differs between y and x" if w != h else None


def _constant_weights(op, g):
    where = (1, 3) if op["op"] == "TRANSPOSE_CONV" else (1, 2)  # (weights, bias); bias is optional
    names = [_t(g, op["inputs"][k])["name"] or f"tensor {op['inputs'][k]}" for k in where
             if k < len(op["inputs"]) and not _t(g, op["inputs"][k])["constant"]]
    return f"weights/bias {', '.join(names)} not constant" if names else None


def _fc_default_weights(op, g):
    fmt = op["options"].get("weights_format", 0)
    return f"weights format {fmt} is not the default" if fmt else None


def _fc_output_1d(op, g):
    out = _t(g, op["outputs"][0])["shape"]
    return f"output {_shape(out)} is not one-dimensional" if len(_big_dims(out)) > 1 else None


def _resize_integer_upscale(op, g):
    src, dst = _t(g, op["inputs"][0])["shape"], _t(g, op["outputs"][0])["shape"]
    if len(src) != 4 or len(dst) != 4:
        return f"input {_shape(src)} is not an image tensor"
    (h, w), (h2, w2) = src[1:3], dst[1:3]
    if h2 < h or w2 < w or h2 % h or w2 % w:
        return f"{h}x{w} -> {h2}x{w2} is not an integer up-scaling (may lose precision on the Edge TPU)"
    return None


def _axes(op, g, index=1):
    t = _t(g, op["inputs"][index]) if len(op["inputs"]) > index else None
    return t["values"] if t is not None and t["values"] is not None else None


def _reduce_xy_only(op, g):
    rank = len(_t(g, op["inputs"][0])["shape"])
    axes = _axes(op, g)
    if axes is None:
        return "reduction axes are not constant"
    bad = sorted({_role(a, rank) for a in axes} - {"x", "y"})
    return f"reduces over {'/'.join(bad)} (only x/y supported)" if bad else None


def _axis_not_batch(op, g):
    if op["op"] == "PACK":
        rank, axes = len(_t(g, op["outputs"][0])["shape"]), [op["options"].get("axis", 0)]
    elif op["op"] == "SPLIT":
        rank, axes = len(_t(g, op["inputs"][1])["shape"]), _axes(op, g, 0)
    else:
        rank, axes = len(_t(g, op["inputs"][0])["shape"]), _axes(op, g)
    if axes is None:
        return "axis is not constant"
    return "operates on the batch dimension" if "batch" in {_role(a, rank) for a in axes} else None


def _pad_xy_only(op, g):
    rank = len(_t(g, op["inputs"][0])["shape"])
    pads = _axes(op, g)
    if pads is None or len(pads) < 2 * rank:
        return "paddings are not constant"
    bad = sorted({_role(a, rank) for a in range(rank) if pads[2 * a] or pads[2 * a + 1]} - {"x", "y"})
    return f"pads along {'/'.join(bad)} (only x/y supported)" if bad else None


def _prelu_alpha_1d(op, g):
    alpha = _t(g, op["inputs"][1])["shape"]
    return f"alpha {_shape(alpha)} is not 1-dimensional" if len(_big_dims(alpha[:-1])) else None


def _softmax_1d(op, g):
    t = _t(g, op["inputs"][0])
    if len(_big_dims(t["shape"])) > 1:
        return f"input {_shape(t['shape'])} is not 1-D"
    return f"{t['elements']} elements (max 16,000)" if t["elements"] > 16000 else None


def _strided_slice_unit(op, g):
    strides = _axes(op, g, 3)
    if strides is None:
        return "strides are not constant"
    if any(s != 1 for s in strides):
        return f"strides {strides} are not all 1"
    masks = [k for k in ("ellipsis_mask", "new_axis_mask") if op["options"].get(k)]
    return f"{' and '.join(masks)} set" if masks else None


def _concat_constant_zero_pad(op, g):
    consts = [i for i in op["inputs"] if _t(g, i)["constant"]]
    if consts and len(op["inputs"]) != 2:
        return f"{len(consts)} constant input(s) among {len(op['inputs'])} (only a 2-input zero padding maps)"
    return None


CHECKS = {f.__name__[1:]: f for f in (
    _no_fused_activation, _same_dilation, _constant_weights, _fc_default_weights, _fc_output_1d,
    _resize_integer_upscale, _reduce_xy_only, _axis_not_batch, _pad_xy_only, _prelu_alpha_1d, _softmax_1d,
    _strided_slice_unit, _concat_constant_zero_pad)}


def _general(op, g):
    """Coral's model requirements, which every op must meet: [(why, requirement id)]."""
    why = []
    for i in op["inputs"] + op["outputs"]:
        t = _t(g, i)
        label = t["name"] or f"tensor {i}"
        if t["constant"]:
            if t["dtype"] not in CONSTANT_TYPES:
                why.append((f"{t['dtype']} constant {label} (not quantized)", "int8"))
            continue
        if t["dtype"] not in QUANTIZED:
            why.append((f"{t['dtype']} tensor {label} (needs int8/uint8)", "int8"))
        if any(d < 0 for d in t["signature"]):
            why.append((f"dynamic shape {_shape(t['signature'])} of {label}", "static_shapes"))
        if len(_big_dims(t["shape"][:-3])):
            why.append((f"{label} {_shape(t['shape'])} has more than 3 dimensions above 1", "rank"))
    return sorted(set(why), key=why.index)


def _boundary(op, g):
    if op["op"] == "QUANTIZE":
        t = op["inputs"][0]
        return t in g["inputs"] and _t(g, t)["dtype"] not in QUANTIZED
    if op["op"] == "DEQUANTIZE":
        return any(o in g["outputs"] for o in op["outputs"])
    return False


def check_op(op, graph, rules=None) -> list:
    """Why ``op`` cannot map to the Edge TPU: [{"why", "rule"}] ([] when it is predicted to map).

    ``rule`` is the text of the Coral requirement or table row the op breaks.
    """
    rules = rules or load_rules()
    row = rules["ops"].get(op["op"])
    general = rules["general"]
    if row is None:
        kind = "custom op" if op["custom"] else "op"
        return [{"why": f"{kind} {op['op']} is not in Coral's supported-operations table",
                 "rule": general["supported_op"]["rule"]}]
    why = [{"why": w, "rule": general[rule]["rule"]} for w, rule in _general(op, graph)]
    for name in row.get("checks", ()):
        reason = CHECKS[name](op, graph)
        if reason:
            rule = general[GENERAL_CHECKS[name]]["rule"] if name in GENERAL_CHECKS else f"{op['op']}: {row['note']}"
            why.append({"why": reason, "rule": rule})
    return why


def macs(op, graph) -> int:
    """Multiply-accumulates of the ops that carry them (convolutions, fully-connected, matmul)."""
    kind = op["op"]
    if kind not in WEIGHTED and kind != "BATCH_MATMUL":
        return 0
    out = _t(graph, op["outputs"][0])["elements"]
    if kind == "BATCH_MATMUL":
        return out * _t(graph, op["inputs"][0])["shape"][-1]
    w = _t(graph, op["inputs"][1])["shape"]
    if kind == "CONV_2D":
        return out * math.prod(w[1:])
    if kind == "DEPTHWISE_CONV_2D":
        return out * math.prod(w[1:3])
    if kind == "FULLY_CONNECTED":
        return out * w[-1]
    return _t(graph, op["inputs"][2])["elements"] * math.prod(w[:3])  # TRANSPOSE_CONV: input x O*Kh*Kw


def _compiled(graph):
    inside = [op for op in graph["operators"] if op["op"] == EDGETPU_OP]
    outside = [{"index": op["index"], "op": op["op"]} for op in graph["operators"] if op["op"] != EDGETPU_OP]
    total = len(graph["operators"])
    tail = f", {len(outside)} op(s) left on the CPU: {', '.join(o['op'] for o in outside)}" if outside else \
        ", no op left on the CPU"
    return {"model": graph["name"], "kind": "compiled", "ops_total": total, "custom_ops": len(inside),
            "compiled_bytes": sum(op["custom_bytes"] for op in inside), "ops_outside": outside,
            "summary": f"Edge TPU: compiled ({len(inside)} {EDGETPU_OP}{tail})"}


def predict(graph, rules=None) -> dict:
    """The pre-flight report of a parsed graph (edge.tflite_graph.parse_graph)."""
    rules = rules or load_rules()
    if any(op["op"] == EDGETPU_OP for op in graph["operators"]):
        return _compiled(graph)
    ops = graph["operators"]
    boundary = [op["index"] for op in ops if _boundary(op, graph)]
    reasons = {op["index"]: check_op(op, graph, rules) for op in ops if op["index"] not in boundary}
    split = next((i for i, why in reasons.items() if why), None)
    on_cpu = set(boundary) | ({op["index"] for op in ops if op["index"] >= split} if split is not None else set())
    side = {op["index"]: "cpu" if op["index"] in on_cpu else "edgetpu" for op in ops}
    mac = {"edgetpu": 0, "cpu": 0}
    params = {"edgetpu": 0, "cpu": 0}
    seen = set()
    for op in ops:
        mac[side[op["index"]]] += macs(op, graph)
        for i in op["inputs"]:
            if graph["tensors"][i]["constant"] and i not in seen:
                seen.add(i)
                params[side[op["index"]]] += graph["tensors"][i]["bytes"]
    usable = rules["parameter_cache"]["usable_bytes"]
    on_chip = min(params["edgetpu"], usable)
    floats = any(_t(graph, i)["dtype"].startswith("float") for op in ops if op["index"] not in boundary
                 for i in op["inputs"] + op["outputs"])
    uncertain = [{"index": op["index"], "op": op["op"], "note": rules["ops"][op["op"]]["heuristic"]}
                 for op in ops if op["index"] not in on_cpu and "heuristic" in rules["ops"].get(op["op"], {})]
    report = {
        "model": graph["name"], "kind": "prediction", "int8": not floats,
        "ops_total": len(ops), "ops_mapped": len(ops) - len(on_cpu),
        "first_cpu_op": None if split is None else {"index": split, "op": ops[split]["op"], "reasons": reasons[split]},
        "cpu_ops": [{"index": i, "op": ops[i]["op"], "reasons": reasons.get(i, [])}
                    for i in sorted(on_cpu - set(boundary))],
        "boundary_ops": [{"index": i, "op": ops[i]["op"]} for i in boundary],
        "uncertain": uncertain, "macs": mac, "param_bytes": params,
        "parameter_cache": {"usable_bytes": usable, "on_chip_bytes": on_chip,
                            "streamed_bytes": params["edgetpu"] - on_chip},
        "note": "prediction from Coral's published op table, not a compile; edgetpu_compiler's log is the truth",
    }
    report["summary"] = summary_line(report)
    return report


def preflight(model) -> dict:
    """Parse ``model`` (path or bytes) and predict; raises edge.errors.ModelError for a bad file."""
    from edge.tflite_graph import parse_graph

    return predict(parse_graph(model))


def summary_line(report) -> str:
    if report["kind"] == "compiled":
        return report["summary"]
    counts = f"{report['ops_mapped']}/{report['ops_total']} ops mapped"
    if not report["int8"]:
        return f"Edge TPU: not ready, float model (needs the full-integer int8 variant); predicted {counts}"
    first = report["first_cpu_op"]
    if first is None:
        return f"Edge TPU: predicted {counts}"
    return f"Edge TPU: predicted {counts}; first CPU op #{first['index']} {first['op']} ({first['reasons'][0]['why']})"


def _mb(n):
    return f"{n / 1e6:.2f} MB"


def render(report) -> list:
    """Human lines for ``edgeinspect doctor MODEL`` and ``export``."""
    if report["kind"] == "compiled":
        return [report["summary"], f"  compiled Edge TPU code and parameters: {_mb(report['compiled_bytes'])}"]
    head = summary_line({**report, "first_cpu_op": None})  # the first CPU op gets its own lines
    lines = [f"{head} (a prediction from Coral's op table, not a compile)"]
    first = report["first_cpu_op"]
    if first:
        lines.append(f"  first CPU op     #{first['index']} {first['op']}: " + "; ".join(r["why"] for r in first["reasons"]))
        lines += [f"  Coral's rule     {rule}" for rule in dict.fromkeys(r["rule"] for r in first["reasons"])]
        rest = [f"#{c['index']} {c['op']}" for c in report["cpu_ops"] if c["index"] != first["index"]]
        if rest:
            lines.append(f"  then on the CPU  {', '.join(rest[:8])}" + (f", ... ({len(rest)} ops)" if len(rest) > 8 else ""))
    if report["boundary_ops"]:
        lines.append("  CPU at the edges " + ", ".join(f"#{b['index']} {b['op']}" for b in report["boundary_ops"]))
    m, p, c = report["macs"], report["param_bytes"], report["parameter_cache"]
    lines.append(f"  MACs             Edge TPU {m['edgetpu'] / 1e6:.1f} M, CPU {m['cpu'] / 1e6:.1f} M")
    lines.append(f"  parameters       Edge TPU {_mb(p['edgetpu'])}, CPU {_mb(p['cpu'])}")
    lines.append(f"  parameter cache  {_mb(c['on_chip_bytes'])} on chip, {_mb(c['streamed_bytes'])} streamed per "
                 f"inference (~{c['usable_bytes'] / 2**20:.2f} MiB usable of the ~8 MB cache)")
    for u in report["uncertain"]:
        lines.append(f"  uncertain        #{u['index']} {u['op']}: {u['note']}")
    lines.append("  (the real edgetpu_compiler's log overrides this: edgeinspect export RUN --edgetpu)")
    return lines
