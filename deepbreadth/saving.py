"""Files for weights and whole models, written atomically.

Two formats, both ordinary NumPy `.npz` archives (a zip of `.npy` arrays), so
`np.load(path)` opens them with no deepbreadth installed:

- `model.save_weights(path)`: one array per weight, keyed
  '<index>/<weight name>' ('0000/dense/kernel'). The index keeps the order;
  the names are for people reading the file (they may differ between runs).
- `model.save(path)`: the whole model in one file. 'architecture.json' (a
  string array) describes the layers (class name and get_config), how they
  connect, and the compile settings (optimizer, loss, metrics); 'weights/...'
  holds the weights and 'optimizer/...' the optimizer's state, so that
  `load_model` resumes training exactly where it stopped.

The file is written at exactly the path given, whatever its extension ('.npz',
'.keras', '.h5' or none): the contents are always this format.

Loading never unpickles (`allow_pickle=False`): a model file cannot run code.
Writing goes to a temporary file in the same folder that replaces the target
only when complete, so a crash never leaves a half-written file.
"""
import inspect
import json
import os
import tempfile
import zipfile

import numpy as np

from .autograd import Tensor

FORMAT_NAME = "deepbreadth-model"
FORMAT_VERSION = 1
ARCHITECTURE_KEY = "architecture.json"


# ----------------------------------------------------------------------------
# Atomic writing
# ----------------------------------------------------------------------------
def _current_umask():
    # os.umask can only be read by setting it; put the old value straight back.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path, write):
    """Call `write(file)` on a temporary file, then move it to `path` in one step
    (creating `path`'s folder if needed)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                                         suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file private; give it the permissions a plain open() would.
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def save_arrays(path, arrays):
    """Write a dict of NumPy arrays as an .npz file at exactly `path`, atomically."""
    # np.savez given a file object (not a name) adds no '.npz' to the name.
    write_atomically(path, lambda file: np.savez(file, **arrays))


def load_arrays(path):
    """The arrays of an .npz file as a dict, refusing pickled objects."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: '{path}'")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"'{path}' is not a deepbreadth weights or model file (.npz): {error}") \
            from None


# ----------------------------------------------------------------------------
# Weights files
# ----------------------------------------------------------------------------
def weight_key(index, weight):
    return f"{index:04d}/{weight.name}"


def weights_to_arrays(weights, prefix=""):
    """{'<prefix><index>/<name>': array}: the keys sort in the weights' order."""
    return {prefix + weight_key(index, weight): weight.numpy()
            for index, weight in enumerate(weights)}


def arrays_in_order(arrays, prefix=""):
    """(saved name, array) pairs of the keys under `prefix`, in their saved order."""
    keys = sorted(key for key in arrays if key.startswith(prefix))
    return [(key[len(prefix):].split("/", 1)[-1], arrays[key]) for key in keys]


def _layer_of(weight_name):
    return weight_name.rsplit("/", 1)[0] if "/" in weight_name else weight_name


def check_weights_fit(weights, saved, source):
    """Raise a ValueError naming the first weight whose saved array does not fit.

    `weights` are the model's Tensors in creation order, `saved` the
    (name, array) pairs read from the file. Names are not compared: layer
    names change from one run to the next ('dense' vs 'dense_3').
    """
    for position in range(max(len(weights), len(saved))):
        if position >= len(saved):
            weight = weights[position]
            raise ValueError(
                f"{source} holds {len(saved)} weights but the model has {len(weights)}: layer "
                f"'{_layer_of(weight.name)}' (weight '{weight.name}', shape {weight.shape}) has "
                "nothing to load. The file was saved from another architecture; build the same "
                "model before loading"
            )
        saved_name, array = saved[position]
        if position >= len(weights):
            raise ValueError(
                f"{source} holds {len(saved)} weights but the model has only {len(weights)}: "
                f"'{saved_name}' (shape {array.shape}) has no place in it. The file was saved "
                "from another architecture; build the same model before loading"
            )
        weight = weights[position]
        if tuple(array.shape) != tuple(weight.shape):
            raise ValueError(
                f"{source} does not fit this model: layer '{_layer_of(weight.name)}' weight "
                f"'{weight.name}' has shape {weight.shape} in the model but the file has shape "
                f"{array.shape} (saved as '{saved_name}'). The file was saved from another "
                "architecture; build the same model before loading"
            )


# ----------------------------------------------------------------------------
# Nested structures of arrays (the optimizer's state) in an .npz file
# ----------------------------------------------------------------------------
def pack_structure(structure, arrays, prefix):
    """A JSON-able copy of `structure` whose arrays are stored in `arrays` instead.

    Each array becomes {'array': key}; dicts keep their key types, tuples stay
    tuples, so `unpack_structure` gives back exactly what was packed.
    """
    if isinstance(structure, Tensor):
        structure = structure.numpy()
    if isinstance(structure, (np.ndarray, np.generic)):
        key = f"{prefix}{len(arrays):04d}"
        arrays[key] = np.asarray(structure)
        return {"array": key}
    if isinstance(structure, dict):
        return {"dict": [[key, pack_structure(value, arrays, prefix)]
                         for key, value in structure.items()]}
    if isinstance(structure, tuple):
        return {"tuple": [pack_structure(item, arrays, prefix) for item in structure]}
    if isinstance(structure, list):
        return {"list": [pack_structure(item, arrays, prefix) for item in structure]}
    if structure is None or isinstance(structure, (bool, int, float, str)):
        return {"value": structure}
    raise TypeError(f"cannot save {type(structure).__name__} {structure!r} in a model file")


def unpack_structure(packed, arrays):
    if "array" in packed:
        return arrays[packed["array"]]
    if "dict" in packed:
        return {key: unpack_structure(value, arrays) for key, value in packed["dict"]}
    if "tuple" in packed:
        return tuple(unpack_structure(item, arrays) for item in packed["tuple"])
    if "list" in packed:
        return [unpack_structure(item, arrays) for item in packed["list"]]
    return packed["value"]


# ----------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------
def _json_default(value):
    """NumPy numbers and shapes in configs become plain JSON numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.dtype):
        return value.name
    raise TypeError(
        f"cannot save {type(value).__name__} {value!r} in a model's architecture: a layer's "
        "get_config() must return numbers, strings, lists and dicts"
    )


def to_json(document):
    return json.dumps(document, default=_json_default)


def json_array(document):
    """A JSON document as a string array, which np.load reads without pickle."""
    return np.array(to_json(document))


def read_json_array(array):
    return json.loads(str(array))


# ----------------------------------------------------------------------------
# Layers <-> {'class_name', 'config'}
# ----------------------------------------------------------------------------
def serialize_layer(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def _layer_class(class_name, custom_objects):
    if class_name in (custom_objects or {}):
        return custom_objects[class_name]
    # Imported here: models import this module, and a model may contain a model.
    from . import layers, models

    for namespace in (layers, models):
        candidate = getattr(namespace, class_name, None)
        if isinstance(candidate, type):
            return candidate
    raise ValueError(
        f"unknown layer class '{class_name}' in the saved model; if it is your own class, "
        f"pass custom_objects={{'{class_name}': {class_name}}} to load_model"
    )


def deserialize_layer(description, custom_objects=None):
    """A new layer (or model) from `serialize_layer`'s dict."""
    cls = _layer_class(description["class_name"], custom_objects)
    config = description["config"]
    try:
        if _takes_custom_objects(cls):
            return cls.from_config(config, custom_objects=custom_objects)
        return cls.from_config(config)
    except TypeError as error:
        raise TypeError(
            f"cannot re-create {cls.__name__} from its saved config: {error}. Its get_config() "
            "must return the arguments of its __init__ (or define from_config); otherwise "
            "rebuild the model in code and use load_weights"
        ) from None


def _takes_custom_objects(cls):
    return "custom_objects" in inspect.signature(cls.from_config).parameters
