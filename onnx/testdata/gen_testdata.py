"""Writes the reference-implementation fixtures of the onnx package tests.

Run from this directory with the system Python (onnx 1.12, numpy):
    /usr/bin/python3 gen_testdata.py
It writes dtypes.onnx and extdata/{model.onnx,weights.bin}. The expected
values in ../read_test.go are the literal lists below.
"""
import numpy as np
import onnx
from onnx import TensorProto as T, helper, numpy_helper

# Each entry: ONNX type, numpy type (None: no numpy type), values.
CASES = [
    ("float", T.FLOAT, np.float32, [-1.5, 0.0, 3.25, 2.0**-10, -3.0e38]),
    ("double", T.DOUBLE, np.float64, [-1.5, 0.1, 1e300, 2.0**-1074]),
    ("float16", T.FLOAT16, np.float16, [-1.5, 0.0, 65504.0, 2.0**-24, 2.0**-14, 0.333251953125]),
    ("bfloat16", T.BFLOAT16, None, [-1.5, 0.0, 0.15625, 2.0**100, -2.0**-100]),
    ("int8", T.INT8, np.int8, [-128, -1, 0, 127]),
    ("uint8", T.UINT8, np.uint8, [0, 1, 200, 255]),
    ("int16", T.INT16, np.int16, [-32768, -1, 0, 32767]),
    ("uint16", T.UINT16, np.uint16, [0, 1, 40000, 65535]),
    ("int32", T.INT32, np.int32, [-2147483648, -1, 0, 2147483647]),
    ("uint32", T.UINT32, np.uint32, [0, 1, 3000000000, 4294967295]),
    ("int64", T.INT64, np.int64, [-9223372036854775808, -1, 0, 9007199254740993, 9223372036854775807]),
    ("uint64", T.UINT64, np.uint64, [0, 1, 18446744073709551615]),
    ("bool", T.BOOL, np.bool_, [True, False, True]),
]


def bf16_raw(vals):
    bits = np.array(vals, dtype=np.float32).view(np.uint32)
    assert np.all(bits & 0xFFFF == 0), "values must be exact in bfloat16"
    return (bits >> 16).astype("<u2").tobytes()


def dtypes_model():
    inits = []
    for name, dt, npt, vals in CASES:
        # typed field chosen by the reference helper (int32_data, uint64_data, ...)
        inits.append(helper.make_tensor(name + "_typed", dt, [len(vals)], vals))
        if npt is None:
            raw = helper.make_tensor(name + "_raw", dt, [len(vals)], bf16_raw(vals), raw=True)
        else:
            raw = numpy_helper.from_array(np.array(vals, dtype=npt), name + "_raw")
        assert raw.HasField("raw_data")
        inits.append(raw)
    inits.append(numpy_helper.from_array(np.array(2.5, dtype=np.float32), "scalar"))
    inits.append(numpy_helper.from_array(np.zeros((2, 0, 3), dtype=np.float32), "empty"))
    inits.append(helper.make_tensor("matrix_typed", T.FLOAT, [2, 3], [1, 2, 3, 4, 5, 6]))
    x = helper.make_tensor_value_info("x", T.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", T.FLOAT, ["N", 4])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"], name="id")], "dtypes", [x], [y], inits)
    m = helper.make_model(g, producer_name="gen_testdata.py", opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(m)
    onnx.save(m, "dtypes.onnx")


def extdata_model():
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3) / 4, "w")
    s = numpy_helper.from_array(np.array([3, -1], dtype=np.int64), "shape")
    x = helper.make_tensor_value_info("x", T.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", T.FLOAT, [3, 2])
    nodes = [helper.make_node("Add", ["x", "w"], ["a"], name="add"),
             helper.make_node("Reshape", ["a", "shape"], ["y"], name="reshape")]
    g = helper.make_graph(nodes, "extdata", [x], [y], [w, s])
    m = helper.make_model(g, producer_name="gen_testdata.py", opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(m)
    onnx.save_model(m, "extdata/model.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    onnx.checker.check_model("extdata/model.onnx")


dtypes_model()
extdata_model()
