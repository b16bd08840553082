#!/usr/bin/env python3
"""The torchless side of the GPU check's model section (scripts/gpu-check.sh), and its table.

    python3 scripts/gpu_compare.py --work DIR --bin DIR --out DIR [--device cuda] [--dry-run]

Pure Python (no numpy, no torch): it runs the bundled binaries and compares numbers.

- Every family of DIR/manifest.json (written by scripts/gpu_models.py) in every dtype with a
  reference in DIR/refs: `torchless embed|generate|classify --device D --dtype T --json`;
  error = max over rows of ||ours - PyTorch f32|| / ||PyTorch f32|| (PyTorch on the same
  device); the limit is 1e-4 in f32 (and greedy ids identical), max(1e-2, 2 x PyTorch's own
  error in that dtype) in f16/bf16.
- The committed fixtures (tests/fixtures: expected outputs of real PyTorch, f32): tiny-st and
  tiny-bert-prefixed embeddings, the first case of every decoder family (greedy ids, first-step
  logits), the same sentences through libtorchless.so (ctypes).
- Timings: `bench-models` for BERT-base batch 1 and 32, ResNet-50 batch 1 and 32, Llama
  prefill and decode at batch 1 and 16, next to DIR/torch-timings.json; decode rows get the
  share of the weight-bandwidth roofline (weight bytes per step x steps/s / the copy bandwidth
  PyTorch measured on the same device).
- The graph runtime (`torch.export` programs): `torchless run PROGRAM.pt2 --input ... --device D
  --json` on the BERT-base and ResNet-50 programs of DIR/manifest.json's `graphs` (written by
  scripts/gpu_models.py) against PyTorch's outputs of the same module on the same device, and
  on the committed fixtures tests/fixtures/graph/{bert_tiny,resnet_small,llama_tiny,unet_tiny}
  against their out_*.npy; error = max |ours - PyTorch| / max |PyTorch| (as tests/graph.rs),
  limit 1e-4 (f32). Timed with `bench-models graph` (Program::run, outputs back on the host)
  at batch 1 and 32 next to PyTorch eager of the same module.

Every JSON output must name the device asked for (`"device": "cuda:0"`): a CPU fallback fails.
Without a reference (no torch: the CI dry run), error columns say "no torch" and are not
failures with --dry-run. Prints one line per row as it goes and writes the table to OUT/RESULTS-gpu.md and OUT/results.json;
exit status 1 if any row failed.
"""
import argparse
import array
import ast
import ctypes
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
DTYPE_BYTES = {"f32": 4, "f16": 2, "bf16": 2}
DECODER_FIXTURES = ["gpt2", "llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"]
GRAPH_FIXTURES = ["bert_tiny", "resnet_small", "llama_tiny", "unet_tiny"]
GRAPH_LABELS = {"bert-base": "graph BERT-base (torchless run)",
                "resnet50": "graph ResNet-50 (torchless run)"}
NPY_TYPES = {"<f4": ("f", True), "<f8": ("d", True), "<i8": ("q", False), "<i4": ("i", False),
             "<i2": ("h", False), "|i1": ("b", False), "|u1": ("B", False), "|b1": ("B", False)}


def rel_err(ours, ref):
    """max over rows of ||a - b|| / ||b|| (rows: lists of floats; a flat list is one row)."""
    if ours and not isinstance(ours[0], list):
        ours, ref = [ours], [ref]
    if len(ours) != len(ref):
        return math.inf
    worst = 0.0
    for a, b in zip(ours, ref):
        if len(a) != len(b):
            return math.inf
        num = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
        den = math.sqrt(sum(y * y for y in b)) or 1.0
        e = num / den
        worst = e if (e > worst or math.isnan(e)) else worst
    return worst


def read_npy(path):
    """(shape, values as a flat list, is_float) of a little-endian C-order .npy file."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:6] != b"\x93NUMPY":
        raise ValueError(f"{path}: not a .npy file")
    if b[6] == 1:
        n, start = int.from_bytes(b[8:10], "little"), 10
    else:
        n, start = int.from_bytes(b[8:12], "little"), 12
    h = ast.literal_eval(b[start:start + n].decode("latin1"))
    if h["fortran_order"] or h["descr"] not in NPY_TYPES:
        raise ValueError(f"{path}: {h['descr']} (fortran {h['fortran_order']}) is not read here")
    code, is_float = NPY_TYPES[h["descr"]]
    vals = array.array(code)
    vals.frombytes(b[start + n:])
    if sys.byteorder != "little":
        vals.byteswap()
    shape = list(h["shape"])
    if len(vals) != math.prod(shape):
        raise ValueError(f"{path}: {len(vals)} values for shape {shape}")
    return shape, vals, is_float


def max_rel(ours, want):
    """max |ours - want| / max |want| over PyTorch's finite values (tests/graph.rs's measure);
    inf when ours is NaN there or a NaN or infinity of PyTorch is not matched."""
    scale = max((abs(w) for w in want if math.isfinite(w)), default=0.0) or 1e-6
    worst = 0.0
    for a, w in zip(ours, want):
        if math.isfinite(w):
            d = abs(a - w)
            if not d <= worst:  # also true for a NaN of ours
                worst = d if math.isfinite(d) else math.inf
        elif not (a == w or (math.isnan(a) and math.isnan(w))):
            return math.inf
    return worst / scale


class Check:
    def __init__(self, args):
        self.a = args
        self.rows = []
        self.failed = False
        self.tl = os.path.join(args.bin, "torchless")
        self.bench = os.path.join(args.bin, "bench-models")
        with open(os.path.join(args.work, "manifest.json")) as f:
            self.manifest = json.load(f)
        tt = os.path.join(args.work, "torch-timings.json")
        self.torch_t = json.load(open(tt)) if os.path.exists(tt) else None
        os.makedirs(os.path.join(args.out, "ours"), exist_ok=True)

    def row(self, check, dtype, result, error="", ours="", theirs="", ratio="", share="", note=""):
        if result == "FAIL":
            self.failed = True
        self.rows.append(dict(check=check, dtype=dtype, error=error, ours=ours, theirs=theirs,
                              ratio=ratio, share=share, result=result, note=note))
        print(f"  {result:<4} {check} {dtype} {error} {ours} {theirs} {note}".rstrip(), flush=True)

    def run_json(self, cmd, tag):
        """Runs a binary, saves its stdout under OUT/ours; (json or None, error text)."""
        t = time.time()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, str(e)
        with open(os.path.join(self.a.out, "ours", tag + ".json"), "w") as f:
            f.write(p.stdout)
        with open(os.path.join(self.a.out, "ours", tag + ".log"), "w") as f:
            f.write(" ".join(cmd) + f"\n({time.time() - t:.1f} s, exit {p.returncode})\n" + p.stderr)
        if p.returncode != 0:
            return None, (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
        try:
            return json.loads(p.stdout.strip().splitlines()[-1] if tag.startswith("bench") else p.stdout), ""
        except (ValueError, IndexError) as e:
            return None, f"unreadable output: {e}"

    def on_device(self, out):
        """Whether a JSON output ran on the device asked for."""
        want = "cuda" if self.a.device.startswith("cuda") else "cpu"
        return str(out.get("device", "")).startswith(want)

    def cli(self, kind, path, dtype, entry):
        run = ["--device", self.a.device, "--dtype", dtype, "--json"]
        if kind == "bert":
            return [self.tl, "embed", "--model", path, "--input",
                    os.path.join(path, "texts.json")] + run
        if kind == "resnet":
            return [self.tl, "classify", "--model", path, "--input-npy", entry["input"]] + run
        ids = ",".join(map(str, entry["prompt_ids"]))
        return [self.tl, "generate", "--model", path, "--prompt-ids", ids, "--max-new-tokens",
                str(entry["new_tokens"]), "--ignore-eos"] + run

    # ------------------------------------------------------------ random-weight families
    def families(self):
        print("== families (random weights) against PyTorch on the same device")
        refs = os.path.join(self.a.work, "refs")
        for name, e in self.manifest["models"].items():
            kind = e["kind"]
            ref32 = self.ref(refs, name, "f32")
            for dt in self.a.dtypes:
                label = f"{name} ({kind}) end to end"
                if self.cpu_bf16_conv(kind, dt):
                    continue
                out, err = self.run_json(self.cli(kind, e["path"], dt, e), f"{name}.{dt}")
                if out is None:
                    self.row(label, dt, "FAIL", note=err)
                    continue
                if not self.on_device(out):
                    self.row(label, dt, "FAIL", note=f"ran on {out.get('device')}, not {self.a.device}")
                    continue
                ref = self.ref(refs, name, dt)
                if ref32 is None or ref is None:
                    self.row(label, dt, self.no_ref(), error="no torch")
                    continue
                key = {"bert": "embeddings", "resnet": "logits"}.get(kind, "first_step_logits")
                err = rel_err(out[key], ref32[key])
                torch_err = rel_err(ref[key], ref32[key])
                limit = 1e-4 if dt == "f32" else max(1e-2, 2 * torch_err)
                ok = err <= limit and math.isfinite(limit)
                note = f"limit {limit:.1e}" if math.isfinite(limit) else "PyTorch's own output is not finite"
                if kind in ("gpt2", "llama"):
                    same = out["new_ids"] == ref["new_ids"]
                    note += "; greedy ids " + ("identical" if same else "DIFFER")
                    if dt == "f32" and not same:
                        ok = False
                shown = f"{err:.1e}" + ("" if dt == "f32" else f" (PyTorch {torch_err:.1e})")
                self.row(label, dt, "PASS" if ok else "FAIL", error=shown, note=note)

    def cpu_bf16_conv(self, kind, dt, label=None):
        """bf16 convolutions are refused on the CPU (candle has no bf16 CPU matmul): in a dry
        run that row is listed as N/A instead of run."""
        if kind != "resnet" or dt != "bf16" or self.a.device != "cpu":
            return False
        self.row(label or "resnet50 (resnet) end to end", dt, "N/A",
                 note="bf16 convolutions are not supported on the CPU (a GPU-only row)")
        return True

    def ref(self, refs, name, dt):
        p = os.path.join(refs, f"{name}.{dt}.json")
        return json.load(open(p)) if os.path.exists(p) else None

    def no_ref(self):
        return "SKIP" if self.a.dry_run else "FAIL"

    # ------------------------------------------------------------ committed fixtures (f32)
    def fixtures(self):
        print("== committed fixtures (expected outputs of real PyTorch, f32)")
        bert = json.load(open(os.path.join(FIX, "bert", "expected.json")))
        sentences = os.path.join(FIX, "bert", "sentences.json")
        for folder, exp in [("tiny-st", bert["embeddings"]),
                            (bert["plain_folder"]["folder"], bert["plain_folder"]["embeddings"])]:
            cmd = [self.tl, "embed", "--model", os.path.join(FIX, "bert", folder), "--input",
                   sentences, "--device", self.a.device, "--dtype", "f32", "--json"]
            self.compare_fixture(f"fixture bert/{folder} (embed)", cmd, f"fixture-{folder}",
                                 lambda o, exp=exp: (rel_err(o["embeddings"], exp), ""))
        dec = json.load(open(os.path.join(FIX, "decoders", "expected.json")))
        for fam in DECODER_FIXTURES:
            m = dec["models"].get(fam)
            if m is None:
                continue
            case = m["cases"][0]
            cmd = [self.tl, "generate", "--model", os.path.join(FIX, "decoders", m["folder"]),
                   "--prompt-ids", ",".join(map(str, case["prompt_ids"])), "--max-new-tokens",
                   str(len(case["greedy_new_ids"])), "--device", self.a.device, "--dtype", "f32",
                   "--json"]

            def judge(o, case=case):
                e = rel_err(o["first_step_logits"], case["prompt_logits"][-1])
                same = o["new_ids"] == case["greedy_new_ids"]
                return (e if same else math.inf), "greedy ids " + ("identical" if same else "DIFFER")
            self.compare_fixture(f"fixture decoders/{fam} (generate)", cmd, f"fixture-{fam}", judge)
        self.capi(bert)

    def compare_fixture(self, label, cmd, tag, judge):
        out, err = self.run_json(cmd, tag)
        if out is None:
            return self.row(label, "f32", "FAIL", note=err)
        if not self.on_device(out):
            return self.row(label, "f32", "FAIL", note=f"ran on {out.get('device')}")
        e, note = judge(out)
        self.row(label, "f32", "PASS" if e <= 1e-4 else "FAIL", error=f"{e:.1e}",
                 note=("limit 1e-04; " + note).rstrip("; "))

    def capi(self, bert):
        """libtorchless.so through ctypes: tiny-st embeddings on the device."""
        label = "C ABI libtorchless.so (torchless_embed, tiny-st)"
        so = os.path.join(self.a.bin, "libtorchless.so")
        try:
            lib = ctypes.CDLL(so)
        except OSError as e:
            return self.row(label, "f32", "FAIL", note=str(e))
        lib.torchless_last_error.restype = ctypes.c_char_p
        model = ctypes.c_void_p()
        st = lib.torchless_model_load(os.path.join(FIX, "bert", "tiny-st").encode(),
                                      self.a.device.encode(), b"f32", ctypes.byref(model))
        if st != 0:
            return self.row(label, "f32", "FAIL", note=(lib.torchless_last_error() or b"").decode())
        texts = [s["text"].encode() for s in bert["sentences"]]
        arr = (ctypes.c_char_p * len(texts))(*texts)
        dim = bert["hidden_size"]
        buf = (ctypes.c_float * (len(texts) * dim))()
        rows, d = ctypes.c_size_t(), ctypes.c_size_t()
        st = lib.torchless_embed(model, arr, ctypes.c_size_t(len(texts)), buf,
                                 ctypes.c_size_t(len(buf)), ctypes.byref(rows), ctypes.byref(d))
        msg = (lib.torchless_last_error() or b"").decode() if st != 0 else ""
        lib.torchless_model_free(model)
        if st != 0:
            return self.row(label, "f32", "FAIL", note=msg)
        ours = [list(buf[i * d.value:(i + 1) * d.value]) for i in range(rows.value)]
        e = rel_err(ours, bert["embeddings"])
        self.row(label, "f32", "PASS" if e <= 1e-4 else "FAIL", error=f"{e:.1e}",
                 note=f"loaded with device {self.a.device!r} (no fallback in the C ABI)")

    # ------------------------------------------------------------ timings
    def timings(self):
        print("== timings: torchless next to PyTorch eager on the same device")
        tm = self.manifest["timings"]
        models = self.manifest["models"]
        theirs = {(r["model"], r["what"], r["dtype"]): r for r in (self.torch_t or {}).get("rows", [])}
        bw = (self.torch_t or {}).get("bandwidth_bytes_s")
        for dt in self.a.time_dtypes:
            cases = []
            for b in tm["enc_batches"]:
                cases.append(("bert-base", f"batch {b} x {tm['tokens']}",
                              ["encoder", "--batch", b, "--tokens", tm["tokens"], "--runs", tm["runs"]]))
            for b in tm["img_batches"]:
                cases.append(("resnet50", f"batch {b}",
                              ["resnet", "--batch", b, "--image", models["resnet50"]["config"]["image"],
                               "--runs", tm["runs"]]))
            cases.append(("llama-1b", f"prefill {tm['prefill']}",
                          ["decoder", "--prompt", tm["prefill"], "--new", 2, "--runs", tm["dec_runs"]]))
            for b in tm["dec_batches"]:
                cases.append(("llama-1b", f"decode batch {b}",
                              ["decoder", "--batch", b, "--prompt", tm["prompt"], "--new", tm["new"],
                               "--runs", tm["dec_runs"]]))
            graphs = self.manifest.get("graphs") or {}
            for name, g in graphs.items():
                if dt != "f32" or "error" in g:
                    continue  # a program's dtype is part of it: the f32 programs are timed once
                for what, inputs in g["timing_inputs"].items():
                    cases.append((f"graph-{name}", what, ["graph", g["program"]] + [
                        x for p in inputs for x in ("--input", p)] + ["--runs", tm["runs"]]))
            for model, what, args in cases:
                if model.startswith("graph-"):
                    cmd = [self.bench] + [str(x) for x in args] + ["--device", self.a.device]
                else:
                    e = models[model]
                    if self.cpu_bf16_conv(e["kind"], dt, f"{model} {what}"):
                        continue
                    cmd = [self.bench, args[0], e["path"]] + [str(x) for x in args[1:]] + [
                        "--device", self.a.device, "--dtype", dt]
                tag = f"bench-{model}-{what.replace(' ', '_')}-{dt}"
                label = f"{model} {what}"
                out, err = self.run_json(cmd, tag)
                if out is None:
                    self.row(label, dt, "FAIL", note=err)
                    continue
                if not self.on_device(out):
                    self.row(label, dt, "FAIL", note=f"ran on {out.get('device')}")
                    continue
                t = theirs.get((model, what, dt))
                if what.startswith("decode"):
                    b = int(what.split()[-1])
                    ours = out["decode_tok_s"]
                    tt = t["tok_s"] if t else None
                    wbytes = self.weight_bytes(e, dt)
                    share = ""
                    if bw:
                        # torchless runs one forward per sequence and token; PyTorch one per step.
                        share = f"{ours * wbytes / bw:.2g} / " + (f"{tt / b * wbytes / bw:.2g}" if tt else "-")
                    self.row(label, dt, "PASS", ours=f"{ours:.1f} tok/s",
                             theirs=f"{tt:.1f} tok/s" if tt else self.no_torch(),
                             ratio=f"{ours / tt:.2f}x" if tt else "", share=share,
                             note="batch > 1: continuous batching (GenerationQueue) vs one padded batch in PyTorch" if b > 1 else "")
                else:
                    ours = out["prefill_ms"] if what.startswith("prefill") else out["ms"]
                    tt = t["ms"] if t else None
                    note = ""
                    if model.startswith("graph-"):
                        note = ("graph runtime: Program::run, outputs back on the host; PyTorch "
                                "eager runs the exported module")
                    self.row(label, dt, "PASS", ours=f"{ours:.2f} ms",
                             theirs=f"{tt:.2f} ms" if tt else self.no_torch(),
                             ratio=f"{tt / ours:.2f}x" if tt else "", note=note)

    def weight_bytes(self, e, dt):
        """Bytes of weights one decode step reads: every parameter but the embedding table (one
        row of it is gathered)."""
        c = e["config"]
        return (e["params"] - c["vocab"] * c["hidden"]) * DTYPE_BYTES[dt]

    def no_torch(self):
        return "no torch" if self.torch_t is None else "-"

    # ------------------------------------------------------------ the graph runtime
    def run_program(self, program, inputs, tag, big=False):
        """`torchless run` on the device; (outputs' files or None, error text). Big outputs (the
        generated programs': 12 MiB for BERT-base) go under --work, which does not travel back."""
        out_dir = os.path.join(self.a.work if big else self.a.out, "ours", tag)
        cmd = [self.tl, "run", program] + [x for p in inputs for x in ("--input", p)] + [
            "--out-dir", out_dir, "--device", self.a.device, "--json"]
        out, err = self.run_json(cmd, tag)
        if out is None:
            return None, err
        if not self.on_device(out):
            return None, f"ran on {out.get('device')}, not {self.a.device}"
        return [o["file"] for o in out["outputs"]], ""

    def compare_outputs(self, label, files, wants, extra=""):
        """One row: every output against PyTorch's (floats by max_rel, integers exactly)."""
        if len(files) != len(wants):
            return self.row(label, "f32", "FAIL", note=f"{len(files)} outputs, PyTorch {len(wants)}")
        worst, notes = 0.0, []
        for i, (got, want) in enumerate(zip(files, wants)):
            try:
                gs, gv, _ = read_npy(got)
                ws, wv, wf = read_npy(want)
            except (OSError, ValueError) as e:
                return self.row(label, "f32", "FAIL", note=str(e))
            if gs != ws:
                return self.row(label, "f32", "FAIL", note=f"output {i}: shape {gs}, PyTorch {ws}")
            if wf:
                worst = max(worst, max_rel(gv, wv))
            elif list(gv) != list(wv):
                worst = math.inf
                notes.append(f"output {i} (integers) differs")
            notes.append(f"out_{i} {'x'.join(map(str, ws))}")
        ok = worst <= 1e-4
        self.row(label, "f32", "PASS" if ok else "FAIL", error=f"{worst:.1e}",
                 note="limit 1e-04 (max abs error / max abs PyTorch); " + ", ".join(notes) + extra)

    def graph(self):
        print("== graph runtime (torch.export programs, `torchless run`)")
        graphs = self.manifest.get("graphs")
        for name, label in GRAPH_LABELS.items():
            g = (graphs or {}).get(name)
            if g is None:
                self.row(label, "f32", self.no_ref(), error="no torch",
                         note="no program: scripts/gpu_models.py exports it with torch")
                continue
            if "error" in g:
                self.row(label, "f32", "FAIL", note=f"export: {g['error']}")
                continue
            files, err = self.run_program(g["program"], g["inputs"], f"graph-{name}", big=True)
            if files is None:
                self.row(label, "f32", "FAIL", note=err)
                continue
            shapes = " ".join("x".join(map(str, s)) for s in g["shapes"])
            self.compare_outputs(label, files, g["refs"],
                                 f"; inputs {shapes}; PyTorch: {g['module']} on {self.a.device}")
        for case in GRAPH_FIXTURES:
            d = os.path.join(FIX, "graph", case)
            spec = json.load(open(os.path.join(d, "case.json")))
            inputs = [os.path.join(d, f"in_{i}.npy") for i in range(len(spec["inputs"]))]
            wants = [os.path.join(d, f"out_{i}.npy") for i in range(len(spec["outputs"]))]
            label = f"fixture graph/{case} (torchless run)"
            files, err = self.run_program(os.path.join(d, "program.pt2"), inputs, f"fixture-graph-{case}")
            if files is None:
                self.row(label, "f32", "FAIL", note=err)
                continue
            self.compare_outputs(label, files, wants)

    # ------------------------------------------------------------ the table
    def write(self, started):
        card, driver = "no GPU (dry run)" if self.a.dry_run else "?", "-"
        try:
            q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
            if q.returncode == 0 and q.stdout.strip():
                card, driver = [s.strip() for s in q.stdout.strip().splitlines()[0].split(",", 1)]
        except (OSError, subprocess.TimeoutExpired):
            pass
        commit = ""
        cp = os.path.join(self.a.bin, "COMMIT")
        if os.path.exists(cp):
            commit = open(cp).read().strip()[:12]
        m = self.manifest
        head = [
            f"GPU check, model section: card {card}, driver {driver}, "
            f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
            f"device `{self.a.device}`; sizes `{m['size']}`; torch {m.get('torch') or 'none'}; "
            f"reference {(m.get('reference') or {}).get('text', 'none')} / "
            f"{(m.get('reference') or {}).get('vision', 'none')}; commit {commit or '?'}; "
            f"host {platform.machine()} {os.cpu_count()} CPUs; command `bash scripts/gpu-check.sh"
            f"{' --dry-run' if self.a.dry_run else ''}`; {time.time() - started:.0f} s",
            "",
            "Error: max over rows of ||torchless - PyTorch f32|| / ||PyTorch f32||, PyTorch on the "
            "same device (fixtures: the committed PyTorch outputs); in parentheses PyTorch's own "
            "error in that dtype. Times: medians, inputs from and outputs to the host on both "
            "sides; speed = PyTorch time / torchless time (> 1: torchless faster). Bandwidth "
            "share: weight bytes read per second / the copy bandwidth measured in the same run, "
            "torchless / PyTorch.",
            "",
            "| check | dtype | error | torchless | PyTorch eager | speed | bandwidth share | result | note |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines = head + [
            f"| {r['check']} | {r['dtype']} | {r['error']} | {r['ours']} | {r['theirs']} | "
            f"{r['ratio']} | {r['share']} | {r['result']} | {r['note']} |" for r in self.rows]
        text = "\n".join(lines) + "\n"
        with open(os.path.join(self.a.out, "RESULTS-gpu.md"), "w") as f:
            f.write(text)
        with open(os.path.join(self.a.out, "results.json"), "w") as f:
            json.dump({"card": card, "driver": driver, "rows": self.rows}, f, indent=1)
        return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="scripts/gpu_models.py's --out")
    ap.add_argument("--bin", required=True, help="folder of torchless, bench-models, libtorchless.so")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtypes", default="f32,f16,bf16")
    ap.add_argument("--time-dtypes", default="f32,bf16")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    args.dtypes = args.dtypes.split(",")
    args.time_dtypes = args.time_dtypes.split(",")
    started = time.time()
    c = Check(args)
    c.families()
    c.fixtures()
    c.graph()
    c.timings()
    c.write(started)
    print("model section: " + ("FAIL" if c.failed else "PASS"))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
