# ORT MinMaxCalibrater on a one-node Identity model: moving average, per-call stacking, per_channel merge.
# run: /work/venv-calib/bin/python ort_minmax.py   (writes models to a temp dir)
import io, contextlib, tempfile, os, numpy as np, onnx
from onnx import helper, TensorProto
from onnxruntime.quantization.calibrate import MinMaxCalibrater, CalibrationDataReader
d = tempfile.mkdtemp(); path = os.path.join(d, "m.onnx")
X = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3]); Y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 3])
onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "g", [X], [Y]), opset_imports=[helper.make_opsetid("", 17)], ir_version=10), path)
class R(CalibrationDataReader):
    def __init__(s, bs): s.it = iter([{"X": b} for b in bs])
    def get_next(s): return next(s.it, None)
def run(calls, **kw):
    c = MinMaxCalibrater(path, augmented_model_path=os.path.join(d, "aug.onnx"), **kw); c.augment_graph(); c.create_inference_session()
    for bs in calls: c.collect_data(R(bs))
    return {k: tuple(np.asarray(v) for v in c.compute_data()[k].range_value) for k in ("X",)}
b = [np.array([[1, -2, 3]], np.float32), np.array([[5, -1, 0]], np.float32), np.array([[2, -7, 1]], np.float32)]
print("plain, one call        :", run([b]))
print("moving avg, one call   :", run([b], moving_average=True), " = mean of per-batch min/max:", np.mean([x.min() for x in b]), np.mean([x.max() for x in b]))
print("moving avg, three calls:", run([[x] for x in b], moving_average=True), " EMA f32:", end=" ")
lo = np.float32(b[0].min()); hi = np.float32(b[0].max())
for x in b[1:]: lo = lo + np.float32(0.01) * (np.float32(x.min()) - lo); hi = hi + np.float32(0.01) * (np.float32(x.max()) - hi)
print(lo, hi)
print("symmetric              :", run([b], symmetric=True))
print("max_intermediate_outputs=2, one call:", run([b], max_intermediate_outputs=2), "(batches 1,2 dropped?)")
try: print("per_channel, two calls :", run([b[:1], b[1:]], per_channel=True))
except Exception as ex: print("per_channel, two calls ->", type(ex).__name__, str(ex)[:90])
print("per_channel, one call  :", run([b], per_channel=True))
print("NaN batch              :", run([[np.array([[np.nan, 1, -1]], np.float32), b[0]]]))
print("-0.0 vs 0.0 min        :", [np.signbit(v) for v in run([[np.array([[0.0, -0.0, 0.0]], np.float32)]])["X"]])
print("NaN batch w/ extremes  :", run([[np.array([[np.nan, 100, -100]], np.float32), b[0]]]))
print("all-NaN-batches call   :", end=" ")
try: print(run([[np.array([[np.nan, 100, -100]], np.float32)]]))
except Exception as ex: print(type(ex).__name__, str(ex)[:80])
