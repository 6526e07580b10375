"""The accuracy phase: run an evaluation set through the loaded model, after (and apart
from) the timed runs, and send the predictions to the host, which scores them.

The evaluation file is an .npz the host shipped (by sha256, like a model) with an
input array (``x`` by default) and labels (``y``) of any shape and dtype. Only an
integer class label (one integer per item) travels back with the predictions; other
labels (real numbers, boxes, vectors) stay in the file, which the host scores from
its own copy (named by its own record of the plan; the sha256 echoed in the summary
is only checked against it). The host already applied any declared preprocessing
(resize, layout, mean/std); here
the array is only cast to the input's dtype, and quantised with the input's
(scale, zero_point) when the model takes integers and the data are real numbers.

Messages: ``phase accuracy begin``, one ``accuracy`` per batch of items
(``start``, ``index``, ``label``, ``top`` (top-k class indices, best first),
``score`` (the best output value) and, when asked, ``output`` (the whole output
vector, dequantised)), then ``phase accuracy end``. Python 3.7, stdlib + numpy;
nothing here is timed.
"""

import time

from hilbench_agent.protocol import AgentError

BATCH = 200
#: A batch is also sent once it holds this many output values, so that a line stays a few MB (the host
#: refuses protocol lines over 16 MiB: a float prints as up to ~24 bytes).
BATCH_VALUES = 200000
#: An item with more output values than this (a segmentation map) is scored but its vector is not sent:
#: alone it would make a line too long for the host.
ITEM_VALUES = 500000
clock = time.monotonic_ns


def _output_quantization(backend):
    """(scale, zero_point) of the first output where the runtime says (LiteRT), else None."""
    interp = getattr(backend, "interp", None)
    if interp is None:
        return None
    try:
        q = interp.get_output_details()[0].get("quantization") or (0.0, 0)
    except Exception:
        return None
    return (float(q[0]), int(q[1])) if q[0] else None


def _prepare(x, spec):
    import numpy as np

    want = np.dtype(spec.dtype)
    if want.kind in "iu" and x.dtype.kind == "f":
        if not spec.quantization:
            raise AgentError("input", "input %r takes %s but the evaluation data are real numbers and the "
                             "model gives no quantisation: give integer data (eval dtype)" % (spec.name, want))
        scale, zero_point = spec.quantization
        info = np.iinfo(want)
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(want)
    return x.astype(want, copy=False)


def run_accuracy(channel, backend, specs, cfg):
    """Run ``cfg`` (path, x, y, limit, top_k, keep_outputs) through ``backend``; returns the summary."""
    import numpy as np

    if len(specs) != 1:
        raise AgentError("input", "the accuracy phase supports single-input models; this one has %d inputs (%s)"
                         % (len(specs), ", ".join(s.name for s in specs)))
    spec = specs[0]
    channel.send("phase", phase="accuracy", event="begin")
    t0 = clock()
    try:
        data = np.load(cfg["path"], allow_pickle=False)
        x_all = data[cfg.get("x") or "x"]
        y_key = cfg.get("y") or "y"
        y_all = data[y_key] if y_key in data else None
    except (IOError, OSError, KeyError, ValueError) as exc:
        raise AgentError("input", "evaluation file %s cannot be read: %s" % (cfg.get("path"), exc))
    n = len(x_all)
    limit = cfg.get("limit")
    if limit:
        n = min(n, int(limit))
    top_k = max(1, int(cfg.get("top_k") or 5))
    keep = bool(cfg.get("keep_outputs", True))
    out_q = _output_quantization(backend)
    # A class label is one integer per item; a real number (0.1 would become 0) or a vector is not.
    class_labels = (y_all is not None and np.asarray(y_all).dtype.kind in "iub"
                    and np.asarray(y_all[:1]).size <= 1)
    batch = {"index": [], "label": [], "top": [], "score": [], "output": []}
    start = 0
    values = 0  # output values in the batch
    too_large = 0  # items whose output vector was too large to send
    for i in range(n):
        arr = _prepare(np.asarray(x_all[i:i + 1]), spec)
        backend.set_inputs({spec.name: arr})
        try:
            res = backend.invoke()
            outs = res if isinstance(res, (list, tuple)) and len(res) else backend.outputs()
        except AgentError:
            raise
        except Exception as exc:
            text = str(exc).strip().splitlines()
            raise AgentError("backend", "inference failed on evaluation item %d: %s"
                             % (i, text[0] if text else exc.__class__.__name__))
        out = np.asarray(outs[0]).reshape(-1)
        if out_q is not None and out.dtype.kind in "iu":
            out = (out.astype(np.float64) - out_q[1]) * out_q[0]
        out = out.astype(np.float64)
        k = min(top_k, out.size)
        top = np.argsort(-out, kind="stable")[:k]
        batch["index"].append(i)
        batch["label"].append(int(np.asarray(y_all[i]).reshape(-1)[0]) if class_labels else None)
        batch["top"].append([int(t) for t in top])
        batch["score"].append(float(out[top[0]]))
        if keep and out.size > ITEM_VALUES:
            batch["output"].append(None)
            too_large += 1
        elif keep:
            batch["output"].append([float(v) for v in out])
            values += out.size
        if len(batch["index"]) >= BATCH or values >= BATCH_VALUES or i == n - 1:
            channel.send("accuracy", start=start, index=batch["index"], label=batch["label"], top=batch["top"],
                         score=batch["score"], output=batch["output"] if keep else None)
            start = i + 1
            batch = {"index": [], "label": [], "top": [], "score": [], "output": []}
            values = 0
    duration = clock() - t0
    channel.send("phase", phase="accuracy", event="end", count=n, duration_ns=duration)
    info = {"count": n, "top_k": top_k, "duration_ns": duration, "output_dequantized": out_q is not None,
            "class_labels": bool(class_labels)}
    if too_large:
        info["outputs_not_kept"] = too_large
    if y_all is not None:
        info["y"] = y_key
    # The file's sha256 as the host sent it, echoed as a witness (the host checks its own copy against it).
    # The scorer and the reference are the host's business: it reads them from its own record of the plan.
    for key in ("name", "sha256"):
        if cfg.get(key):
            info[key] = cfg[key]
    return info
