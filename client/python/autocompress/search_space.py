"""The seed's AutoCompressionSearchSpaceGenerator (reference §1.3), with the C++ SDK's
fixes: an unknown algorithm is an error (NNI ignored it silently), the caller's config
dicts are not modified (NNI popped their op_types), and two entries producing the same key
are an error (NNI kept the later one)."""

import copy
import json

PRUNERS = ("level", "slim", "l1", "l2", "fpgm", "taylorfo", "apoz", "mean_activation")
QUANTIZERS = ("naive", "qat", "dorefa", "bnn")


def _wrap(value):
    if not isinstance(value, dict):
        return {"_type": "choice", "_value": [value]}
    if "_type" in value:
        return copy.deepcopy(value)
    return {k: _wrap(v) for k, v in value.items()}


def _segment(entry, field, where):
    value = entry.get(field, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}.{field}: expected a list of non-empty strings, got {value!r}")
    return ":".join(value)


class AutoCompressionSearchSpaceGenerator:
    def __init__(self):
        self.algorithm_choice_list = []

    def add_config(self, algorithm_name, config_list, **algo_kwargs):
        """Appends one option of the compressor choice."""
        if algorithm_name not in PRUNERS + QUANTIZERS:
            raise ValueError(f"unknown algorithm {algorithm_name!r}; known: "
                             + ", ".join(PRUNERS + QUANTIZERS))
        quantizer = algorithm_name in QUANTIZERS
        option = {"_name": algorithm_name}
        for i, entry in enumerate(config_list):
            where = f"config_list[{i}]"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: expected a dict, got {entry!r}")
            segments = [_segment(entry, "op_types", where), _segment(entry, "op_names", where)]
            if quantizer:
                segments.insert(0, _segment(entry, "quant_types", where))
            prefix = "::".join(["config_list"] + segments)
            fields = {k: v for k, v in entry.items()
                      if k not in ("op_types", "op_names", "quant_types")}
            if not fields:
                raise ValueError(f"{where}: has no field besides the layer selectors")
            for field, value in fields.items():
                key = f"{prefix}::{field}"
                if key in option:
                    raise ValueError(f"{where}.{field}: an earlier entry has the same op_types "
                                     "and op_names and sets it too; merge the two entries")
                option[key] = _wrap(value)
        for name, value in algo_kwargs.items():
            option[f"parameter::{name}"] = _wrap(value)
        self.algorithm_choice_list.append(option)

    def dumps(self):
        """NNI's nested search space: {'algorithm_name': {'_type': 'choice', '_value': [...]}}."""
        return {"algorithm_name": {"_type": "choice",
                                   "_value": copy.deepcopy(self.algorithm_choice_list)}}

    def loads(self, search_space):
        self.algorithm_choice_list = copy.deepcopy(search_space["algorithm_name"]["_value"])

    def json(self):
        return json.dumps(self.dumps())
