"""STAND-INS for vendor benchmark runners (``trtexec``, ``benchmark_model``): small ``sh`` scripts that print output
shaped like the real tools' (their formats as in ``../shared/runner-outputs``) so the tests can drive the runner
path over a real shell and a real sshd. No TensorRT, GPU or LiteRT runs: the figures are fixed and made up, and
every test that uses them says so. The real tools' output is covered by the recorded logs."""

from __future__ import annotations

from pathlib import Path

TRTEXEC = r"""#!/bin/sh
# hilbench test STAND-IN for NVIDIA trtexec: trtexec-shaped output, fixed made-up figures; no TensorRT runs.
times=""; dla=""
for a in "$@"; do
  case "$a" in
    --exportTimes=*) times="${a#--exportTimes=}";;
    --useDLACore=*) dla="${a#--useDLACore=}";;
  esac
done
echo "&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # trtexec $*"
echo "[12/01/2026-10:00:00] [I] === Model Options ==="
if [ -n "$dla" ]; then
  echo "[12/01/2026-10:00:00] [V] [TRT] ---------- Layers Running on DLA ----------"
  echo "[12/01/2026-10:00:00] [V] [TRT] [DlaLayer] {ForeignNode[conv1...res5]}"
  echo "[12/01/2026-10:00:00] [V] [TRT] ---------- Layers Running on GPU ----------"
  echo "[12/01/2026-10:00:00] [V] [TRT] [GpuLayer] SOFTMAX: prob"
fi
echo "[12/01/2026-10:00:00] [I] Engine deserialized in 0.05 sec."
[ -n "$STANDIN_SLEEP" ] && sleep "$STANDIN_SLEEP"
sleep 0.2
if [ -n "$STANDIN_FAIL" ]; then
  echo "[12/01/2026-10:00:00] [E] Error[4]: stand-in failure"
  echo "&&&& FAILED TensorRT.trtexec [TensorRT v8502] # trtexec $*"
  exit 1
fi
echo "[12/01/2026-10:00:01] [I] Warmup completed 3 queries over 200 ms"
echo "[12/01/2026-10:00:01] [I] Timing trace has 5 queries over 0.2 s"
echo "[12/01/2026-10:00:01] [I] === Performance summary ==="
echo "[12/01/2026-10:00:01] [I] Throughput: 25 qps"
echo "[12/01/2026-10:00:01] [I] Latency: min = 2 ms, max = 3 ms, mean = 2.4 ms, median = 2.25 ms, percentile(99%) = 3 ms"
echo "[12/01/2026-10:00:01] [I] GPU Compute Time: min = 1.5 ms, max = 2.5 ms, mean = 1.9 ms, median = 1.75 ms, percentile(99%) = 2.5 ms"
echo "[12/01/2026-10:00:01] [I] Total Host Walltime: 0.2 s"
echo "[12/01/2026-10:00:01] [I] Total GPU Compute Time: 0.0095 s"
if [ -n "$times" ]; then
  {
    echo '['
    echo '  { "startEnqMs" : 1, "endEnqMs" : 1.1, "startComputeMs" : 1.1, "endComputeMs" : 3, "h2dMs" : 0.1, "computeMs" : 1.5, "d2hMs" : 0.4, "latencyMs" : 2 }'
    echo ', { "startEnqMs" : 4, "endEnqMs" : 4.1, "startComputeMs" : 4.1, "endComputeMs" : 6, "h2dMs" : 0.1, "computeMs" : 1.75, "d2hMs" : 0.4, "latencyMs" : 2.25 }'
    echo ', { "startEnqMs" : 7, "endEnqMs" : 7.1, "startComputeMs" : 7.1, "endComputeMs" : 9, "h2dMs" : 0.1, "computeMs" : 1.75, "d2hMs" : 0.4, "latencyMs" : 2.25 }'
    echo ', { "startEnqMs" : 10, "endEnqMs" : 10.1, "startComputeMs" : 10.1, "endComputeMs" : 12, "h2dMs" : 0.1, "computeMs" : 2, "d2hMs" : 0.4, "latencyMs" : 2.5 }'
    echo ', { "startEnqMs" : 13, "endEnqMs" : 13.1, "startComputeMs" : 13.1, "endComputeMs" : 15, "h2dMs" : 0.1, "computeMs" : 2.5, "d2hMs" : 0.5, "latencyMs" : 3 }'
    echo ']'
  } > "$times"
fi
echo "&&&& PASSED TensorRT.trtexec [TensorRT v8502] # trtexec $*"
"""

BENCHMARK_MODEL = r"""#!/bin/sh
# hilbench test STAND-IN for LiteRT benchmark_model: its output's shape, fixed made-up figures; no LiteRT runs.
echo "INFO: STARTING!"
for a in "$@"; do case "$a" in --graph=*) echo "INFO: Graph: [${a#--graph=}]";; esac; done
echo "INFO: Num threads: [2]"
echo "INFO: Use xnnpack: [1]"
echo "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
echo "VERBOSE: Replacing 60 out of 66 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 3 partitions for the whole graph."
echo "INFO: Explicitly applied XNNPACK delegate, and the model graph will be partially executed by the delegate w/ 3 delegate kernels."
echo "INFO: Initialized session in 12.5ms."
echo "INFO: Running benchmark for at least 3 iterations and at least 0 seconds but terminate if exceeding 150 seconds."
sleep 0.2
echo "INFO: count=3 first=5100 curr=4100 min=4000 max=5100 avg=4400 std=480"
echo "INFO: Running benchmark for at least 20 iterations and at least 0 seconds but terminate if exceeding 150 seconds."
echo "INFO: count=20 first=4150 curr=4120 min=4010 max=4700 avg=4150.5 std=90"
echo "INFO: Inference timings in us: Init: 12500, First inference: 5100, Warmup (avg): 4400, Inference (avg): 4150.5"
"""


def write_standin(folder: Path, name: str, text: str) -> Path:
    """Write one stand-in runner script, executable, into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    path.chmod(0o755)
    return path
