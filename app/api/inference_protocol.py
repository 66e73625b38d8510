"""The Open Inference Protocol (KServe v2) on the wire: request tensors in, response out.

JSON tensors and the binary tensor data extension (Triton's): a request whose
``Inference-Header-Content-Length`` header says how long its JSON part is, followed by the
raw bytes of each input that declares ``parameters.binary_data_size``; outputs asked for
with ``parameters.binary_data`` come back the same way.
"""

import json
import struct
from dataclasses import dataclass, field

import numpy as np

from app.api.errors import ServiceError

HEADER_LENGTH = "inference-header-content-length"

DATATYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP32": np.float32,
    "FP64": np.float64,
}


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    value: np.ndarray | list[bytes]


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: list[str] | None  # None: every output
    binary_outputs: set[str]
    parameters: dict = field(default_factory=dict)
    """The request's own parameters (``binary_data_output``, ``explain``)."""


def parse_request(body: bytes, header_length: str | None, max_elements: int) -> InferRequest:
    """The request's tensors; :class:`ServiceError` 400 for anything malformed."""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise _bad(f"Inference-Header-Content-Length {header_length!r} does not fit the body")
        head, binary = body[: int(header_length)], memoryview(body)[int(header_length) :]
    else:
        head, binary = body, memoryview(b"")
    try:
        request = json.loads(head)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"the request is not JSON: {exc}") from exc
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise _bad("the request needs an 'inputs' list")
    inputs, offset = [], 0
    for spec in request["inputs"]:
        tensor, offset = _input(spec, binary, offset, max_elements)
        inputs.append(tensor)
    if offset != len(binary):
        raise _bad(f"{len(binary) - offset} bytes of binary data belong to no input")
    parameters = request.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _bad("'parameters' must be an object")
    everything_binary = bool(parameters.get("binary_data_output"))
    wanted, binary_outputs = None, set()
    if request.get("outputs") is not None:
        if not isinstance(request["outputs"], list):
            raise _bad("'outputs' must be a list")
        wanted = []
        for spec in request["outputs"]:
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise _bad("each requested output needs a 'name'")
            wanted.append(spec["name"])
            if (spec.get("parameters") or {}).get("binary_data", everything_binary):
                binary_outputs.add(spec["name"])
    elif everything_binary:
        binary_outputs = {"*"}
    request_id = request.get("id")
    return InferRequest(
        request_id if isinstance(request_id, str) else None,
        inputs,
        wanted,
        binary_outputs,
        parameters,
    )


def _input(spec: object, binary: memoryview, offset: int, max_elements: int) -> tuple:
    if not isinstance(spec, dict):
        raise _bad("each input must be an object")
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise _bad("each input needs a 'name' and a 'datatype'")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise _bad(f"input {name!r}: 'shape' must be a list of non-negative integers")
    count = int(np.prod(shape)) if shape else 1
    if count > max_elements:
        raise ServiceError(413, f"input {name!r} has {count} elements; the limit is {max_elements}")
    size = (spec.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise _bad(f"input {name!r}: binary_data_size {size!r} does not fit the body")
        raw = binary[offset : offset + size]
        offset += size
        if datatype == "BYTES":
            value: np.ndarray | list[bytes] = _unpack_bytes(name, raw, count)
        else:
            value = _unpack(name, datatype, raw, count).reshape(shape)
    elif "data" in spec:
        value = _from_json(name, datatype, spec["data"], shape, count)
    else:
        raise _bad(f"input {name!r} has neither 'data' nor binary_data_size")
    return Tensor(name, datatype, tuple(shape), value), offset


def _from_json(name: str, datatype: str, data: object, shape: list, count: int):
    if datatype == "BYTES":
        items = list(np.asarray(data, dtype=object).reshape(-1)) if count else []
        if len(items) != count or not all(isinstance(i, str) for i in items):
            raise _bad(f"input {name!r}: BYTES data must be {count} strings")
        return [i.encode("latin-1", errors="replace") for i in items]
    if datatype not in DATATYPES:
        raise _bad(f"input {name!r}: datatype {datatype} is not supported")
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise _bad(f"input {name!r}: 'data' is not a tensor of numbers ({exc})") from exc
    if array.size != count:
        raise _bad(f"input {name!r}: {array.size} values for shape {shape}")
    if datatype == "UINT8" and (np.any(array < 0) or np.any(array > 255) or np.any(array % 1)):
        raise _bad(f"input {name!r}: UINT8 values must be whole numbers in 0..255")
    return array.astype(DATATYPES[datatype]).reshape(shape)


def _unpack(name: str, datatype: str, raw: memoryview, count: int) -> np.ndarray:
    if datatype not in DATATYPES:
        raise _bad(f"input {name!r}: datatype {datatype} is not supported")
    dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise _bad(f"input {name!r}: {len(raw)} bytes for {count} {datatype} values")
    return np.frombuffer(raw, dtype=dtype).astype(DATATYPES[datatype])


def _unpack_bytes(name: str, raw: memoryview, count: int) -> list[bytes]:
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise _bad(f"input {name!r}: BYTES element cut short")
        (length,) = struct.unpack_from("<I", raw, offset)
        if offset + 4 + length > len(raw):
            raise _bad(f"input {name!r}: BYTES element cut short")
        items.append(bytes(raw[offset + 4 : offset + 4 + length]))
        offset += 4 + length
    if len(items) != count:
        raise _bad(f"input {name!r}: {len(items)} BYTES elements for {count}")
    return items


def encode_response(
    model: str, version: str, request: InferRequest, outputs: dict[str, tuple[str, np.ndarray]]
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers; ``outputs`` maps name -> (datatype, values)."""
    names = request.outputs if request.outputs is not None else list(outputs)
    unknown = [n for n in names if n not in outputs]
    if unknown:
        raise _bad(f"unknown output(s) {unknown}; the model gives {sorted(outputs)}")
    described, binary = [], []
    for name in names:
        datatype, values = outputs[name]
        entry: dict = {"name": name, "datatype": datatype, "shape": list(values.shape)}
        if name in request.binary_outputs or "*" in request.binary_outputs:
            data = values.astype(np.dtype(DATATYPES[datatype]).newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(data)}
            binary.append(data)
        else:
            entry["data"] = values.reshape(-1).tolist()
        described.append(entry)
    head = {"model_name": model, "model_version": version, "outputs": described}
    if request.id is not None:
        head["id"] = request.id
    text = json.dumps(head).encode()
    if not binary:
        return text, {"content-type": "application/json"}
    headers = {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(text))}
    return text + b"".join(binary), headers


def _bad(message: str) -> ServiceError:
    return ServiceError(400, message)
