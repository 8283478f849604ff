"""Export to a TF.js graph model that Studio loads with `tf.loadGraphModel` (@tensorflow/tfjs 4.22).

docs/contract.md: a Keras 3 *layers-model* export does not load in tfjs 4.22; a graph model converted
from a SavedModel does. The converter names outputs Identity:0, Identity_1:0, ... and drops
names, so the exported model has one output, [batch, 6, steps]: each stem's level in dB
relative to the mix, stems along axis 1 in STEMS order, clipped to the range the targets live
in (what Studio applies is what was judged). The manifest records the order, the step length
and the unit; nothing depends on the converter's naming.
"""

import json
import os
import tempfile
from pathlib import Path

import keras

from training.contract import STEMS
from training.features import FEATURE_DIM, FEATURE_VERSION, LEVEL_CEILING_DB, LEVEL_FLOOR_DB, MAX_STEPS, STEP_SECONDS
from training.model import INPUT_NAME


def export_graph_model(model: keras.Model, out_dir: Path, float16: bool = False) -> dict:
    """Writes model.json and weight shards to `out_dir`; returns the input/output spec."""
    # tensorflow-decision-forests (imported by the converter) takes any non-terminal stdout, a
    # worker's log file, for a notebook and imports IPython to print a banner there.
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    from tensorflowjs.converters.tf_saved_model_conversion_v2 import convert_tf_saved_model

    out_dir.mkdir(parents=True, exist_ok=True)
    clipped = keras.Model(model.inputs, keras.ops.clip(model.outputs[0], LEVEL_FLOOR_DB, LEVEL_CEILING_DB), name="levels")
    with tempfile.TemporaryDirectory() as saved_model:
        clipped.export(saved_model, format="tf_saved_model", verbose=False)
        convert_tf_saved_model(
            saved_model,
            str(out_dir),
            signature_def="serving_default",
            saved_model_tags="serve",
            quantization_dtype_map={"float16": "*"} if float16 else None,
        )
    signature = json.loads((out_dir / "model.json").read_text())["signature"]
    [(input_key, input_spec)] = signature["inputs"].items()
    [output_name] = signature["outputs"]
    return {
        "input": {
            "name": input_spec["name"],
            "signature_key": input_key,
            "layer": INPUT_NAME,
            "shape": [None, MAX_STEPS, FEATURE_DIM],
            "dtype": "float32",
            "feature_version": FEATURE_VERSION,
            "step_seconds": STEP_SECONDS,
        },
        "output": {
            "name": output_name,
            "shape": [None, len(STEMS), MAX_STEPS],
            "stem_axis": 1,
            "unit": "dB relative to the mix",
            "range": [LEVEL_FLOOR_DB, LEVEL_CEILING_DB],
        },
        "stems": list(STEMS),
        "weights": "float16" if float16 else "float32",
    }
