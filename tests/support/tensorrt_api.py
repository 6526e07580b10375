"""The TensorRT Python API, per version, as far as hilbench's TensorRT backend touches it: which module names,
enum members and class attributes each supported version has. tests/support/fake_tensorrt.py builds a
stand-in ``tensorrt`` module per version from this table (a name missing here raises AttributeError there),
and tests/test_tensorrt.py checks that every name the backend uses on a version is in that version's table.

Where each entry comes from (NVIDIA's Python API reference and migration guides):

* 8.5 (JetPack 5.1): docs.nvidia.com/deeplearning/tensorrt/archives/tensorrt-853/api/python_api/ -
  infer/Core/Builder.html (NetworkDefinitionCreationFlag: EXPLICIT_BATCH, EXPLICIT_PRECISION [deprecated];
  Builder.num_DLA_cores, create_network, create_builder_config, create_optimization_profile,
  build_serialized_network), infer/Core/BuilderConfig.html (set_memory_pool_limit, set_flag, default_device_type,
  DLA_core, add_optimization_profile, profiling_verbosity; BuilderFlag; MemoryPoolType; ProfilingVerbosity
  since 8.2), infer/Core/Engine.html (the name-based I/O API new in 8.5: num_io_tensors, get_tensor_name,
  get_tensor_mode, get_tensor_shape, get_tensor_dtype, get_tensor_profile_shape; device_memory_size;
  create_engine_inspector), infer/Core/ExecutionContext.html (set_input_shape, set_tensor_address,
  get_tensor_shape, execute_async_v3: all new in 8.5), infer/Core/Runtime.html (DLA_core),
  infer/Core/EngineInspector.html + LayerInformationFormat (8.2+), infer/Core/Logger.html (ILogger,
  ILogger.Severity), parsers/Onnx/pyOnnx.html (OnnxParser.parse, parse_from_file, num_errors, get_error),
  infer/FoundationalTypes/DataType.html (FLOAT, HALF, INT8, INT32, BOOL, UINT8).
* 8.6 (JetPack 6.0): archives/tensorrt-861/api/python_api/, the same pages: adds
  IBuilderConfig.builder_optimization_level and hardware_compatibility_level, BuilderFlag VERSION_COMPATIBLE,
  EXCLUDE_LEAN_RUNTIME and FP8, DataType.FP8, MemoryPoolType.TACTIC_DRAM.
* 10.x (JetPack 6.1/6.2 ship 10.3): docs.nvidia.com/deeplearning/tensorrt/api/python_api/infer/Core/Builder.html
  ("EXPLICIT_BATCH : [DEPRECATED] Ignored because networks are always explicit batch in TensorRT 10.0";
  STRONGLY_TYPED), the 8.x-to-10.x migration guide (api/migration/tensorrt-8x-to-10x-python-api-reference.html:
  EXPLICIT_PRECISION and the binding-index API removed), infer/Core/Engine.html (device_memory_size and
  device_memory_size_v2; the C++ member list of 10.8.0 has getDeviceMemorySizeV2, 10.0.0's has not: v2 came
  with 10.1), DataType BF16, INT64, INT4 (10.0). BuilderFlag FP16/INT8 still exist (deprecated from 10.12).
* 11.x: api/migration/tensorrt-10x-to-11x-python-api-reference.html ("Removed Python APIs": BuilderFlag.FP16,
  INT8, FP8, BF16, INT4, FP4, OBEY_PRECISION_CONSTRAINTS, PREFER_PRECISION_CONSTRAINTS; the INT8 calibrator and
  quantization flags; ICudaEngine.device_memory_size -> device_memory_size_v2), 11.0.0's
  _static/python-api/infer/Core/Engine.html (device_memory_size_v2 only), the TensorRT 11 NvInfer.h enum
  NetworkDefinitionCreationFlag (kSTRONGLY_TYPED only, "deprecated in TensorRT 11.0: strongly typed mode is
  always enabled"; EXPLICIT_BATCH is gone), the 11.4.1 release notes (DLA on Jetson AGX Orin with strongly typed
  networks; GPU fallback as in 10.x), and the IEngineInspector JSON migration note ("Bindings" became
  "I/O Tensors").

Only what the backend might touch is listed; each enum lists its members in that version as the pages give them.
"""

from __future__ import annotations

_COMMON_MODULE = ["__version__", "Logger", "ILogger", "Builder", "Runtime", "OnnxParser", "TensorIOMode", "DataType",
                  "MemoryPoolType", "BuilderFlag", "DeviceType", "ProfilingVerbosity", "LayerInformationFormat",
                  "NetworkDefinitionCreationFlag", "volume", "nptype"]

_BUILDER_FLAGS_85 = ["FP16", "INT8", "DEBUG", "GPU_FALLBACK", "STRICT_TYPES", "REFIT", "DISABLE_TIMING_CACHE", "TF32",
                     "SPARSE_WEIGHTS", "SAFETY_SCOPE", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS",
                     "DIRECT_IO", "REJECT_EMPTY_ALGORITHMS", "ENABLE_TACTIC_HEURISTIC"]
_BUILDER_FLAGS_86 = [f for f in _BUILDER_FLAGS_85 if f != "ENABLE_TACTIC_HEURISTIC"] + [
    "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "FP8"]
_BUILDER_FLAGS_10 = [f for f in _BUILDER_FLAGS_86 if f != "STRICT_TYPES"] + [
    "ERROR_ON_TIMING_CACHE_MISS", "BF16", "DISABLE_COMPILATION_CACHE", "STRIP_PLAN", "REFIT_IDENTICAL",
    "WEIGHT_STREAMING", "INT4"]
_REMOVED_IN_11 = {"FP16", "INT8", "FP8", "BF16", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS",
                  "PREFER_PRECISION_CONSTRAINTS"}
_BUILDER_FLAGS_11 = [f for f in _BUILDER_FLAGS_10 if f not in _REMOVED_IN_11] + [
    "REFIT_INDIVIDUAL", "STRICT_NANS", "MONITOR_MEMORY", "EDITABLE_TIMING_CACHE", "DISTRIBUTIVE_INDEPENDENCE"]

_CLASSES_85 = {
    "ILogger": ["Severity", "log"],
    "Builder": ["create_network", "create_builder_config", "create_optimization_profile", "build_serialized_network",
                "num_DLA_cores", "platform_has_fast_fp16", "platform_has_fast_int8"],
    "IBuilderConfig": ["set_memory_pool_limit", "get_memory_pool_limit", "set_flag", "get_flag", "clear_flag",
                       "default_device_type", "DLA_core", "add_optimization_profile", "profiling_verbosity",
                       "int8_calibrator"],
    "IOptimizationProfile": ["set_shape", "get_shape"],
    "INetworkDefinition": ["num_inputs", "num_outputs", "get_input", "get_output", "num_layers"],
    "ITensor": ["name", "shape", "dtype"],
    "OnnxParser": ["parse", "parse_from_file", "num_errors", "get_error"],
    "Runtime": ["deserialize_cuda_engine", "DLA_core"],
    "ICudaEngine": ["num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_shape", "get_tensor_dtype",
                    "get_tensor_profile_shape", "create_execution_context", "create_engine_inspector",
                    "device_memory_size", "num_layers", "num_optimization_profiles"],
    "IExecutionContext": ["set_input_shape", "set_tensor_address", "get_tensor_shape", "execute_async_v3",
                          "execute_v2", "set_optimization_profile_async"],
    "IEngineInspector": ["get_engine_information", "get_layer_information", "execution_context"],
}


def _with(classes: dict[str, list[str]], **changes: tuple[list[str], list[str]]) -> dict[str, list[str]]:
    """``classes`` with (added, removed) names per class."""
    out = {k: list(v) for k, v in classes.items()}
    for cls, (added, removed) in changes.items():
        out[cls] = [n for n in out[cls] if n not in removed] + added
    return out


_CLASSES_86 = _with(_CLASSES_85, IBuilderConfig=(["builder_optimization_level", "hardware_compatibility_level"], []))
_CLASSES_10 = _with(_CLASSES_86, ICudaEngine=(["device_memory_size_v2", "streamable_weights_size"], []))
_CLASSES_11 = _with(_CLASSES_10, ICudaEngine=([], ["device_memory_size"]),
                    Builder=([], ["platform_has_fast_fp16", "platform_has_fast_int8"]),
                    IBuilderConfig=([], ["int8_calibrator"]))

API: dict[str, dict] = {
    "8.5.2.2": {
        "module": _COMMON_MODULE,
        "enums": {
            "NetworkDefinitionCreationFlag": ["EXPLICIT_BATCH", "EXPLICIT_PRECISION"],
            "BuilderFlag": _BUILDER_FLAGS_85,
            "DataType": ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8"],
            "TensorIOMode": ["NONE", "INPUT", "OUTPUT"],
            "MemoryPoolType": ["WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM", "DLA_GLOBAL_DRAM"],
            "DeviceType": ["GPU", "DLA"],
            "ProfilingVerbosity": ["LAYER_NAMES_ONLY", "DETAILED", "NONE", "DEFAULT", "VERBOSE"],
            "LayerInformationFormat": ["ONELINE", "JSON"],
            "Severity": ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"],
        },
        "classes": _CLASSES_85,
    },
    "8.6.2.3": {
        "module": _COMMON_MODULE,
        "enums": {
            "NetworkDefinitionCreationFlag": ["EXPLICIT_BATCH", "EXPLICIT_PRECISION"],
            "BuilderFlag": _BUILDER_FLAGS_86,
            "DataType": ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "FP8"],
            "TensorIOMode": ["NONE", "INPUT", "OUTPUT"],
            "MemoryPoolType": ["WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM", "DLA_GLOBAL_DRAM", "TACTIC_DRAM"],
            "DeviceType": ["GPU", "DLA"],
            "ProfilingVerbosity": ["LAYER_NAMES_ONLY", "DETAILED", "NONE", "DEFAULT", "VERBOSE"],
            "LayerInformationFormat": ["ONELINE", "JSON"],
            "Severity": ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"],
        },
        "classes": _CLASSES_86,
    },
    "10.3.0": {
        "module": _COMMON_MODULE,
        "enums": {
            "NetworkDefinitionCreationFlag": ["EXPLICIT_BATCH", "STRONGLY_TYPED"],
            "BuilderFlag": _BUILDER_FLAGS_10,
            "DataType": ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "FP8", "BF16", "INT64", "INT4"],
            "TensorIOMode": ["NONE", "INPUT", "OUTPUT"],
            "MemoryPoolType": ["WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM", "DLA_GLOBAL_DRAM", "TACTIC_DRAM",
                               "TACTIC_SHARED_MEMORY"],
            "DeviceType": ["GPU", "DLA"],
            "ProfilingVerbosity": ["LAYER_NAMES_ONLY", "DETAILED", "NONE"],
            "LayerInformationFormat": ["ONELINE", "JSON"],
            "Severity": ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"],
        },
        "classes": _CLASSES_10,
    },
    "11.4.1": {
        "module": _COMMON_MODULE,
        "enums": {
            "NetworkDefinitionCreationFlag": ["STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS", "PREFER_JIT_PYTHON_PLUGINS"],
            "BuilderFlag": _BUILDER_FLAGS_11,
            "DataType": ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "FP8", "BF16", "INT64", "INT4", "FP4"],
            "TensorIOMode": ["NONE", "INPUT", "OUTPUT"],
            "MemoryPoolType": ["WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM", "DLA_GLOBAL_DRAM", "TACTIC_DRAM",
                               "TACTIC_SHARED_MEMORY"],
            "DeviceType": ["GPU", "DLA"],
            "ProfilingVerbosity": ["LAYER_NAMES_ONLY", "DETAILED", "NONE"],
            "LayerInformationFormat": ["ONELINE", "JSON"],
            "Severity": ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"],
        },
        "classes": _CLASSES_11,
    },
}

#: The versions the backend claims, by the JetPack that ships them.
VERSIONS = {"8.5.2.2": "JetPack 5.1", "8.6.2.3": "JetPack 6.0", "10.3.0": "JetPack 6.1/6.2", "11.4.1": "TensorRT 11"}


def has(version: str, where: str, name: str) -> bool:
    """Whether ``name`` exists in ``where`` (``module``, an enum or a class name) of ``version``."""
    api = API[version]
    if where == "module":
        return name in api["module"]
    if where in api["enums"]:
        return name in api["enums"][where]
    return name in api["classes"].get(where, ())
