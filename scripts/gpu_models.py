#!/usr/bin/env python3
"""The PyTorch side of the GPU check's model section (scripts/gpu-check.sh): random-weight model
folders, PyTorch's outputs on the same device, and PyTorch's timings.

    python scripts/gpu_models.py --out DIR [--device cuda|cpu] [--size full|tiny]
                                 [--dtypes f32,f16,bf16] [--time-dtypes f32,bf16] [--no-timings]

1. Writes one folder per family under DIR/models (config.json, model.safetensors in f32,
   tokenizer.json copied from tests/fixtures/bert for the encoders): `bert-base` and `minilm`
   (BertModel), `gpt2-small` (GPT2LMHeadModel), `llama-1b` (LlamaForCausalLM, TinyLlama's shape:
   22 layers, 2048 wide, 32/4 heads, 5632 MLP, 32000 vocabulary) and `resnet50` (a torchvision
   state_dict as DIR/models/resnet50.safetensors). `--size tiny` (the dry run) writes the same
   families a few layers deep and a few dozen wide (ResNet-18 layout, 10 classes, 32 x 32
   inputs). Weights are seeded uniform draws; without torch (the CI dry run) they are written in
   pure Python (tiny sizes only) and no reference is computed.
2. The reference, on --device, in every dtype of --dtypes (the f32 weights cast, as torchless
   does at load): mean-pooled embeddings of a few fixture sentences (ids from
   tests/fixtures/bert/expected.json), the greedy continuation and first-step logits of a fixed
   prompt, ResNet logits of a fixed batch. The reference implementation is `transformers`
   (BertModel, GPT2LMHeadModel, LlamaForCausalLM) and torchvision's resnet when importable,
   else the small functional PyTorch implementations below (same math, same state_dict names;
   TORCHLESS_GPU_REF=torch forces them). DIR/manifest.json says which ran.
3. PyTorch eager timings (--no-timings skips them; TF32 off, as in torchless's f32), inputs on the host and outputs back on the
   host as torchless's API does: BERT-base batch 1 and 32 x 128 tokens, ResNet-50 batch 1 and
   32, Llama prefill of 512 tokens (and the first token) and greedy decode tokens/s at batch 1
   and 16, plus the device's copy bandwidth (for the decode roofline share).

4. The graph runtime's programs (with torch only): BERT-base (`BertModel` of the bert-base folder,
   wrapped to return last_hidden_state; inputs input_ids and attention_mask, int64, dynamic
   batch and length) and ResNet-50 (the same state_dict; dynamic batch), exported on the CPU in
   f32 with `torch.export` and saved as DIR/graphs/<model>/program.pt2; the check's inputs
   (BERT 32 x 128 with a padded last row, ResNet batch 32; `--size tiny`: 2 x 16 and batch 2)
   as in_<i>.npy, PyTorch's outputs of the same module on --device in f32 as ref_<i>.npy, and
   the timing inputs of batch 1 and 32 (those of the hand-written rows) as t<batch>_<i>.npy,
   timed eager on --device like the hand-written rows (model `graph-<model>`).

Writes DIR/manifest.json (families, inputs, weight bytes, programs, what ran),
DIR/refs/<model>.<dtype>.json and DIR/torch-timings.json. Exit status 0 unless something failed.
"""
import argparse
import array
import json
import os
import random
import shutil
import statistics
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERT_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "bert")

SIZES = {
    "full": {
        "bert-base": dict(kind="bert", hidden=768, layers=12, heads=12, inter=3072, vocab=30522),
        "minilm": dict(kind="bert", hidden=384, layers=6, heads=12, inter=1536, vocab=30522),
        "gpt2-small": dict(kind="gpt2", hidden=768, layers=12, heads=12, vocab=50257, pos=1024),
        "llama-1b": dict(kind="llama", hidden=2048, layers=22, heads=32, kv_heads=4, inter=5632,
                         vocab=32000, pos=2048),
        "resnet50": dict(kind="resnet", depth=50, classes=1000, image=224),
    },
    "tiny": {
        "bert-base": dict(kind="bert", hidden=32, layers=2, heads=4, inter=64, vocab=1200),
        "minilm": dict(kind="bert", hidden=32, layers=1, heads=4, inter=64, vocab=1200),
        "gpt2-small": dict(kind="gpt2", hidden=32, layers=2, heads=4, vocab=512, pos=640),
        "llama-1b": dict(kind="llama", hidden=64, layers=2, heads=4, kv_heads=2, inter=128,
                         vocab=512, pos=640),
        "resnet50": dict(kind="resnet", depth=18, classes=10, image=32),
    },
}
# The timed cases per size: (model, what, arguments of bench-models and of torch_time).
TIMINGS = {
    "full": dict(enc_batches=[1, 32], tokens=128, img_batches=[1, 32], prefill=512,
                 prompt=32, new=64, dec_batches=[1, 16], runs=20, dec_runs=3),
    "tiny": dict(enc_batches=[1, 2], tokens=16, img_batches=[1, 2], prefill=32,
                 prompt=8, new=8, dec_batches=[1, 2], runs=3, dec_runs=1),
}
PROMPT_IDS = [5, 17, 42, 99, 250, 7, 300, 12, 61, 404, 33, 2]
NEW_TOKENS = 16
RESNET_BATCH = 2

# ---------------------------------------------------------------- parameter layouts

RESNET_BLOCKS = {18: ("basic", [2, 2, 2, 2]), 50: ("bottleneck", [3, 4, 6, 3])}


def param_specs(cfg):
    """[(name, shape, kind)] of a family's state_dict, Hugging Face / torchvision names. kind:
    `w` (weight, small uniform), `b` (bias), `n` (norm scale, near 1), `conv` (fan-in scaled),
    `var` (BatchNorm running variance, positive), `long` (num_batches_tracked)."""
    k = cfg["kind"]
    s = []
    if k == "bert":
        h, i = cfg["hidden"], cfg["inter"]
        s += [("embeddings.word_embeddings.weight", [cfg["vocab"], h], "w"),
              ("embeddings.position_embeddings.weight", [512, h], "w"),
              ("embeddings.token_type_embeddings.weight", [2, h], "w"),
              ("embeddings.LayerNorm.weight", [h], "n"), ("embeddings.LayerNorm.bias", [h], "b")]
        for l in range(cfg["layers"]):
            p = f"encoder.layer.{l}."
            for n in ["attention.self.query", "attention.self.key", "attention.self.value",
                      "attention.output.dense"]:
                s += [(p + n + ".weight", [h, h], "w"), (p + n + ".bias", [h], "b")]
            s += [(p + "intermediate.dense.weight", [i, h], "w"),
                  (p + "intermediate.dense.bias", [i], "b"),
                  (p + "output.dense.weight", [h, i], "w"), (p + "output.dense.bias", [h], "b")]
            for n in ["attention.output.LayerNorm", "output.LayerNorm"]:
                s += [(p + n + ".weight", [h], "n"), (p + n + ".bias", [h], "b")]
    elif k == "gpt2":
        h = cfg["hidden"]
        s += [("transformer.wte.weight", [cfg["vocab"], h], "w"),
              ("transformer.wpe.weight", [cfg["pos"], h], "w")]
        for l in range(cfg["layers"]):
            p = f"transformer.h.{l}."
            s += [(p + "ln_1.weight", [h], "n"), (p + "ln_1.bias", [h], "b"),
                  (p + "attn.c_attn.weight", [h, 3 * h], "w"), (p + "attn.c_attn.bias", [3 * h], "b"),
                  (p + "attn.c_proj.weight", [h, h], "w"), (p + "attn.c_proj.bias", [h], "b"),
                  (p + "ln_2.weight", [h], "n"), (p + "ln_2.bias", [h], "b"),
                  (p + "mlp.c_fc.weight", [h, 4 * h], "w"), (p + "mlp.c_fc.bias", [4 * h], "b"),
                  (p + "mlp.c_proj.weight", [4 * h, h], "w"), (p + "mlp.c_proj.bias", [h], "b")]
        s += [("transformer.ln_f.weight", [h], "n"), ("transformer.ln_f.bias", [h], "b")]
    elif k == "llama":
        h, i = cfg["hidden"], cfg["inter"]
        d = h // cfg["heads"]
        kv = cfg["kv_heads"] * d
        s += [("model.embed_tokens.weight", [cfg["vocab"], h], "w")]
        for l in range(cfg["layers"]):
            p = f"model.layers.{l}."
            s += [(p + "input_layernorm.weight", [h], "n"),
                  (p + "self_attn.q_proj.weight", [h, h], "w"),
                  (p + "self_attn.k_proj.weight", [kv, h], "w"),
                  (p + "self_attn.v_proj.weight", [kv, h], "w"),
                  (p + "self_attn.o_proj.weight", [h, h], "w"),
                  (p + "post_attention_layernorm.weight", [h], "n"),
                  (p + "mlp.gate_proj.weight", [i, h], "w"), (p + "mlp.up_proj.weight", [i, h], "w"),
                  (p + "mlp.down_proj.weight", [h, i], "w")]
        s += [("model.norm.weight", [h], "n"), ("lm_head.weight", [cfg["vocab"], h], "w")]
    elif k == "resnet":
        block, counts = RESNET_BLOCKS[cfg["depth"]]

        def bn(p, c):
            return [(p + ".weight", [c], "n"), (p + ".bias", [c], "b"),
                    (p + ".running_mean", [c], "b"), (p + ".running_var", [c], "var"),
                    (p + ".num_batches_tracked", [], "long")]
        s += [("conv1.weight", [64, 3, 7, 7], "conv")] + bn("bn1", 64)
        cin = 64
        for li, (n, width) in enumerate(zip(counts, [64, 128, 256, 512])):
            out = width * (4 if block == "bottleneck" else 1)
            for b in range(n):
                p = f"layer{li + 1}.{b}"
                if block == "bottleneck":
                    s += [(p + ".conv1.weight", [width, cin, 1, 1], "conv")] + bn(p + ".bn1", width)
                    s += [(p + ".conv2.weight", [width, width, 3, 3], "conv")] + bn(p + ".bn2", width)
                    s += [(p + ".conv3.weight", [out, width, 1, 1], "conv")] + bn(p + ".bn3", out)
                else:
                    s += [(p + ".conv1.weight", [width, cin, 3, 3], "conv")] + bn(p + ".bn1", width)
                    s += [(p + ".conv2.weight", [width, width, 3, 3], "conv")] + bn(p + ".bn2", width)
                if b == 0 and (cin != out or li > 0):
                    s += [(p + ".downsample.0.weight", [out, cin, 1, 1], "conv")]
                    s += bn(p + ".downsample.1", out)
                cin = out
        s += [("fc.weight", [cfg["classes"], cin], "conv"), ("fc.bias", [cfg["classes"]], "b")]
    return s


def bounds(kind, shape):
    """(low, high) of a parameter's uniform draw."""
    if kind == "conv":
        fan_in = 1
        for d in shape[1:]:
            fan_in *= d
        a = (2.0 / fan_in) ** 0.5
        return -a, a
    return {"w": (-0.035, 0.035), "b": (-0.02, 0.02), "n": (0.9, 1.1), "var": (0.5, 1.5)}[kind]


def config_json(name, cfg):
    k = cfg["kind"]
    if k == "bert":
        return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": cfg["vocab"],
                "hidden_size": cfg["hidden"], "num_hidden_layers": cfg["layers"],
                "num_attention_heads": cfg["heads"], "intermediate_size": cfg["inter"],
                "hidden_act": "gelu", "max_position_embeddings": 512, "type_vocab_size": 2,
                "layer_norm_eps": 1e-12, "pad_token_id": 0, "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02}
    if k == "gpt2":
        return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
                "vocab_size": cfg["vocab"], "n_embd": cfg["hidden"], "n_layer": cfg["layers"],
                "n_head": cfg["heads"], "n_positions": cfg["pos"], "n_inner": None,
                "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
                "bos_token_id": cfg["vocab"] - 1, "eos_token_id": cfg["vocab"] - 1,
                "tie_word_embeddings": True, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
                "attn_pdrop": 0.0}
    if k == "llama":
        return {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "vocab_size": cfg["vocab"], "hidden_size": cfg["hidden"],
                "intermediate_size": cfg["inter"], "num_hidden_layers": cfg["layers"],
                "num_attention_heads": cfg["heads"], "num_key_value_heads": cfg["kv_heads"],
                "max_position_embeddings": cfg["pos"], "rms_norm_eps": 1e-5,
                "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
                "attention_bias": False, "mlp_bias": False, "bos_token_id": 1,
                "eos_token_id": 2}
    raise ValueError(name)


# ---------------------------------------------------------------- writing folders

def write_safetensors(path, tensors):
    """tensors: [(name, dtype "F32"|"I64", shape, bytes)] -> a safetensors file."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dt, shape, data in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for _, _, _, data in tensors:
            f.write(data)
    os.replace(path + ".tmp", path)


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def make_weights(cfg, seed, torch):
    """{name: torch tensor (CPU, f32)} when torch is given, else [(name, dtype, shape, bytes)]
    drawn in pure Python (a seeded 65536-value block, tiled: fast enough for tiny sizes)."""
    specs = param_specs(cfg)
    if torch is not None:
        g = torch.Generator().manual_seed(seed)
        out = {}
        for name, shape, kind in specs:
            if kind == "long":
                out[name] = torch.zeros((), dtype=torch.int64)
                continue
            lo, hi = bounds(kind, shape)
            out[name] = torch.rand(shape, generator=g) * (hi - lo) + lo
        return out
    r = random.Random(seed)
    block = [r.random() for _ in range(65536)]
    tensors = []
    for idx, (name, shape, kind) in enumerate(specs):
        if kind == "long":
            tensors.append((name, "I64", shape, struct.pack("<q", 0)))
            continue
        lo, hi = bounds(kind, shape)
        n, start = numel(shape), (idx * 7919) % 65536
        vals = array.array("f", (lo + (hi - lo) * block[(start + j) % 65536] for j in range(n)))
        if sys.byteorder != "little":
            vals.byteswap()
        tensors.append((name, "F32", shape, vals.tobytes()))
    return tensors


def save_torch(path, weights):
    """CPU tensors -> safetensors, their memory written as it is (no numpy needed)."""
    import ctypes
    tensors = []
    for name, t in weights.items():
        t = t.contiguous()
        dt = "F32" if t.is_floating_point() else "I64"
        nbytes = t.numel() * t.element_size()
        data = memoryview((ctypes.c_char * nbytes).from_address(t.data_ptr())) if nbytes else b""
        tensors.append((name, dt, list(t.shape), data))
    write_safetensors(path, tensors)


def npy_header(shape, descr):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join(f"{d}, " for d in shape) if len(shape) > 1 else f"{shape[0]},")
    header += " " * (-(len(header) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()


def write_npy(path, shape, values):
    """A little-endian float32 C-order .npy file."""
    vals = array.array("f", values)
    if sys.byteorder != "little":
        vals.byteswap()
    with open(path, "wb") as f:
        f.write(npy_header(shape, "<f4"))
        f.write(vals.tobytes())


def write_npy_torch(path, t):
    """A CPU float32 or int64 tensor as a C-order .npy file, its memory written as it is."""
    import ctypes
    t = t.contiguous()
    descr = {"torch.float32": "<f4", "torch.int64": "<i8"}[str(t.dtype)]
    nbytes = t.numel() * t.element_size()
    with open(path, "wb") as f:
        f.write(npy_header(list(t.shape), descr))
        if nbytes:
            f.write(memoryview((ctypes.c_char * nbytes).from_address(t.data_ptr())))


def encoder_inputs():
    """Fixture sentences short enough never to be truncated, with their token ids."""
    with open(os.path.join(BERT_FIXTURE, "expected.json")) as f:
        exp = json.load(f)
    rows = [s for s in exp["sentences"] if 2 < len(s["tokens"]["input_ids"]) < 20]
    return [s["text"] for s in rows], [s["tokens"]["input_ids"] for s in rows]


def resnet_input(image):
    n = RESNET_BATCH * 3 * image * image
    return [((i * 7919) % 1000) / 500.0 - 1.0 for i in range(n)]


def write_models(out, size, torch):
    """Writes every folder; returns the manifest's `models` and the weights (torch path)."""
    mdir = os.path.join(out, "models")
    os.makedirs(mdir, exist_ok=True)
    texts, ids = encoder_inputs()
    models, weights = {}, {}
    for seed, (name, cfg) in enumerate(SIZES[size].items(), start=1):
        t0 = time.time()
        w = make_weights(cfg, seed, torch)
        n_params = sum(numel(s) for _, s, k in param_specs(cfg) if k != "long")
        entry = {"kind": cfg["kind"], "config": cfg, "params": n_params}
        if cfg["kind"] == "resnet":
            path = os.path.join(mdir, f"{name}.safetensors")
            entry["input"] = os.path.join(mdir, f"{name}-input.npy")
            entry["input_shape"] = [RESNET_BATCH, 3, cfg["image"], cfg["image"]]
            write_npy(entry["input"], entry["input_shape"], resnet_input(cfg["image"]))
        else:
            folder = os.path.join(mdir, name)
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, "model.safetensors")
            with open(os.path.join(folder, "config.json"), "w") as f:
                json.dump(config_json(name, cfg), f, indent=1)
            if cfg["kind"] == "bert":
                shutil.copy(os.path.join(BERT_FIXTURE, "tokenizer.json"), folder)
                entry["texts"] = texts
                entry["input_ids"] = ids
                with open(os.path.join(folder, "texts.json"), "w") as f:
                    json.dump(texts, f)
            else:
                entry["prompt_ids"] = [i % cfg["vocab"] for i in PROMPT_IDS]
                entry["new_tokens"] = NEW_TOKENS
        if torch is not None:
            save_torch(path, w)
            weights[name] = w
        else:
            write_safetensors(path, w)
        entry["path"] = path if cfg["kind"] == "resnet" else os.path.dirname(path)
        models[name] = entry
        print(f"wrote {name} ({n_params / 1e6:.1f} M parameters) in {time.time() - t0:.1f} s",
              file=sys.stderr, flush=True)
    return models, weights


# ---------------------------------------------------------------- the pure-PyTorch reference

def ref_bert(F, torch, P, cfg, ids, mask):
    """BertModel's last_hidden_state (eval: no dropout), `mask` [B, T] of 0/1."""
    h, nh = cfg["hidden"], cfg["heads"]
    b, t = ids.shape
    pos = torch.arange(t, device=ids.device)
    x = P["embeddings.word_embeddings.weight"][ids] + P["embeddings.position_embeddings.weight"][pos]
    x = x + P["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
    x = F.layer_norm(x, (h,), P["embeddings.LayerNorm.weight"], P["embeddings.LayerNorm.bias"], 1e-12)
    bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
    for l in range(cfg["layers"]):
        p = f"encoder.layer.{l}."
        lin = lambda n, v: F.linear(v, P[p + n + ".weight"], P[p + n + ".bias"])
        split = lambda v: v.view(b, t, nh, h // nh).transpose(1, 2)
        q, k, v = (split(lin("attention.self." + n, x)) for n in ("query", "key", "value"))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        a = lin("attention.output.dense", a.transpose(1, 2).reshape(b, t, h))
        x = F.layer_norm(a + x, (h,), P[p + "attention.output.LayerNorm.weight"],
                         P[p + "attention.output.LayerNorm.bias"], 1e-12)
        m = lin("output.dense", F.gelu(lin("intermediate.dense", x)))
        x = F.layer_norm(m + x, (h,), P[p + "output.LayerNorm.weight"],
                         P[p + "output.LayerNorm.bias"], 1e-12)
    return x


def ref_gpt2(F, torch, P, cfg, ids, cache):
    """GPT2LMHeadModel logits of every position of `ids` [B, T]; `cache` a list (per layer) of
    (k, v) extended in place."""
    h, nh = cfg["hidden"], cfg["heads"]
    b, t = ids.shape
    past = cache[0][0].shape[2] if cache else 0
    pos = torch.arange(past, past + t, device=ids.device)
    x = P["transformer.wte.weight"][ids] + P["transformer.wpe.weight"][pos]
    for l in range(cfg["layers"]):
        p = f"transformer.h.{l}."
        ln = lambda n, v: F.layer_norm(v, (h,), P[p + n + ".weight"], P[p + n + ".bias"], 1e-5)
        conv1d = lambda n, v: torch.addmm(P[p + n + ".bias"], v.reshape(-1, v.shape[-1]),
                                          P[p + n + ".weight"]).view(b, t, -1)
        q, k, v = conv1d("attn.c_attn", ln("ln_1", x)).split(h, dim=2)
        split = lambda u: u.view(b, t, nh, h // nh).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        if len(cache) > l:
            k = torch.cat([cache[l][0], k], dim=2)
            v = torch.cat([cache[l][1], v], dim=2)
            cache[l] = (k, v)
        else:
            cache.append((k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=past == 0 and t > 1)
        x = x + conv1d("attn.c_proj", a.transpose(1, 2).reshape(b, t, h))
        m = F.gelu(conv1d("mlp.c_fc", ln("ln_2", x)), approximate="tanh")
        x = x + conv1d("mlp.c_proj", m)
    x = F.layer_norm(x, (h,), P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], 1e-5)
    return x @ P["transformer.wte.weight"].t()


def ref_llama(F, torch, P, cfg, ids, cache):
    """LlamaForCausalLM logits (rope_theta 10000, no scaling), KV cache as in ref_gpt2."""
    h, nh, nkv = cfg["hidden"], cfg["heads"], cfg["kv_heads"]
    d = h // nh
    b, t = ids.shape
    past = cache[0][0].shape[2] if cache else 0
    pos = torch.arange(past, past + t, device=ids.device, dtype=torch.float32)
    inv = 1.0 / (10000.0 ** (torch.arange(0, d, 2, device=ids.device, dtype=torch.float32) / d))
    ang = torch.outer(pos, inv)
    emb = torch.cat([ang, ang], dim=-1)
    cos, sin = emb.cos().to(P["model.norm.weight"].dtype), emb.sin().to(P["model.norm.weight"].dtype)

    def rope(u):
        u1, u2 = u[..., : d // 2], u[..., d // 2:]
        return u * cos + torch.cat([-u2, u1], dim=-1) * sin

    def rms(v, w):
        vf = v.float()
        return w * (vf * torch.rsqrt(vf.pow(2).mean(-1, keepdim=True) + 1e-5)).to(v.dtype)

    x = P["model.embed_tokens.weight"][ids]
    for l in range(cfg["layers"]):
        p = f"model.layers.{l}."
        lin = lambda n, v: F.linear(v, P[p + n + ".weight"])
        y = rms(x, P[p + "input_layernorm.weight"])
        q = rope(lin("self_attn.q_proj", y).view(b, t, nh, d).transpose(1, 2))
        k = rope(lin("self_attn.k_proj", y).view(b, t, nkv, d).transpose(1, 2))
        v = lin("self_attn.v_proj", y).view(b, t, nkv, d).transpose(1, 2)
        if len(cache) > l:
            k = torch.cat([cache[l][0], k], dim=2)
            v = torch.cat([cache[l][1], v], dim=2)
            cache[l] = (k, v)
        else:
            cache.append((k, v))
        rep = nh // nkv
        a = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1),
                                           is_causal=past == 0 and t > 1)
        x = x + lin("self_attn.o_proj", a.transpose(1, 2).reshape(b, t, h))
        y = rms(x, P[p + "post_attention_layernorm.weight"])
        x = x + lin("mlp.down_proj", F.silu(lin("mlp.gate_proj", y)) * lin("mlp.up_proj", y))
    return F.linear(rms(x, P["model.norm.weight"]), P["lm_head.weight"])


def ref_resnet(F, torch, P, cfg, x):
    """torchvision ResNet (eval BatchNorm) logits."""
    block, counts = RESNET_BLOCKS[cfg["depth"]]

    def bn(v, p):
        return F.batch_norm(v, P[p + ".running_mean"], P[p + ".running_var"], P[p + ".weight"],
                            P[p + ".bias"], False, 0.0, 1e-5)

    x = F.relu(bn(F.conv2d(x, P["conv1.weight"], stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    for li, n in enumerate(counts):
        for b in range(n):
            p = f"layer{li + 1}.{b}"
            stride = 2 if (b == 0 and li > 0) else 1
            idn = x
            if p + ".downsample.0.weight" in P:
                idn = bn(F.conv2d(x, P[p + ".downsample.0.weight"], stride=stride), p + ".downsample.1")
            if block == "bottleneck":
                y = F.relu(bn(F.conv2d(x, P[p + ".conv1.weight"]), p + ".bn1"))
                y = F.relu(bn(F.conv2d(y, P[p + ".conv2.weight"], stride=stride, padding=1), p + ".bn2"))
                y = bn(F.conv2d(y, P[p + ".conv3.weight"]), p + ".bn3")
            else:
                y = F.relu(bn(F.conv2d(x, P[p + ".conv1.weight"], stride=stride, padding=1), p + ".bn1"))
                y = bn(F.conv2d(y, P[p + ".conv2.weight"], padding=1), p + ".bn2")
            x = F.relu(y + idn)
    x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
    return F.linear(x, P["fc.weight"], P["fc.bias"])


# ---------------------------------------------------------------- references and timings

class Runner:
    """One family on one device and dtype, through transformers/torchvision or the functions
    above: `hidden(ids, mask)`, `logits(ids, cache)`, `generate(ids, n)`, `classify(x)`."""

    def __init__(self, torch, name, entry, weights, device, dtype, use_hf):
        import torch.nn.functional as F
        self.torch, self.F, self.cfg, self.kind = torch, F, entry["config"], entry["kind"]
        self.device, self.dtype, self.hf = device, dtype, None
        if use_hf:
            self.hf = load_hf(torch, entry, weights, device, dtype)
        if self.hf is None:
            self.P = {k: (v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device))
                      for k, v in weights.items()}

    def hidden(self, ids, mask):
        if self.hf is not None:
            return self.hf(input_ids=ids, attention_mask=mask).last_hidden_state
        return ref_bert(self.F, self.torch, self.P, self.cfg, ids, mask)

    def logits(self, ids, cache):
        fn = ref_gpt2 if self.kind == "gpt2" else ref_llama
        return fn(self.F, self.torch, self.P, self.cfg, ids, cache)

    def generate(self, ids, n):
        """Greedy: (new ids [B, n], first-step logits [B, V] f32)."""
        torch = self.torch
        if self.hf is not None:
            out = self.hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                   min_new_tokens=n, do_sample=False, use_cache=True,
                                   pad_token_id=0, output_logits=True, return_dict_in_generate=True)
            return out.sequences[:, ids.shape[1]:], out.logits[0].float()
        cache, new = [], []
        logits = self.logits(ids, cache)[:, -1]
        first = logits.float()
        for _ in range(n):
            nxt = logits.argmax(-1, keepdim=True)
            new.append(nxt)
            if len(new) == n:
                break
            logits = self.logits(nxt, cache)[:, -1]
        return torch.cat(new, dim=1), first

    def classify(self, x):
        if self.hf is not None:
            return self.hf(x)
        return ref_resnet(self.F, self.torch, self.P, self.cfg, x)


def load_hf(torch, entry, weights, device, dtype):
    """transformers / torchvision model of `entry` with `weights`, or None when not importable
    (or TORCHLESS_GPU_REF=torch)."""
    if os.environ.get("TORCHLESS_GPU_REF") == "torch":
        return None
    try:
        if entry["kind"] == "resnet":
            import torchvision
            m = getattr(torchvision.models, f"resnet{entry['config']['depth']}")(
                num_classes=entry["config"]["classes"])
            m.load_state_dict(weights)
        else:
            import transformers
            cls = {"bert": transformers.BertModel, "gpt2": transformers.GPT2LMHeadModel,
                   "llama": transformers.LlamaForCausalLM}[entry["kind"]]
            m = cls.from_pretrained(entry["path"])
    except ImportError:
        return None
    return m.to(device=device, dtype=dtype).eval()


def reference_impl(torch):
    if os.environ.get("TORCHLESS_GPU_REF") == "torch":
        return {"text": "pure torch (TORCHLESS_GPU_REF=torch)", "vision": "pure torch"}
    out = {}
    try:
        import transformers
        out["text"] = f"transformers {transformers.__version__}"
    except ImportError:
        out["text"] = "pure torch (no transformers)"
    try:
        import torchvision
        out["vision"] = f"torchvision {torchvision.__version__}"
    except ImportError:
        out["vision"] = "pure torch (no torchvision)"
    return out


def mean_pool(torch, h, mask):
    m = mask[:, :, None].to(torch.float32)
    return (h.float() * m).sum(1) / m.sum(1)


def references(torch, models, weights, device, dtypes, out, impl):
    os.makedirs(os.path.join(out, "refs"), exist_ok=True)
    for name, entry in models.items():
        use_hf = not impl["vision" if entry["kind"] == "resnet" else "text"].startswith("pure")
        for dt in dtypes:
            t0 = time.time()
            r = Runner(torch, name, entry, weights[name], device, DTYPES(torch)[dt], use_hf)
            with torch.inference_mode():
                if entry["kind"] == "bert":
                    ids = entry["input_ids"]
                    t = max(len(i) for i in ids)
                    x = torch.tensor([i + [0] * (t - len(i)) for i in ids], device=device)
                    mask = torch.tensor([[1] * len(i) + [0] * (t - len(i)) for i in ids], device=device)
                    res = {"embeddings": mean_pool(torch, r.hidden(x, mask), mask).cpu().tolist()}
                elif entry["kind"] == "resnet":
                    x = torch.tensor(resnet_input(entry["config"]["image"])).view(entry["input_shape"])
                    res = {"logits": r.classify(x.to(device=device, dtype=r.dtype)).float().cpu().tolist()}
                else:
                    ids = torch.tensor([entry["prompt_ids"]], device=device)
                    new, first = r.generate(ids, entry["new_tokens"])
                    res = {"new_ids": new[0].tolist(), "first_step_logits": first[0].cpu().tolist()}
            with open(os.path.join(out, "refs", f"{name}.{dt}.json"), "w") as f:
                json.dump(res, f)
            del r
            print(f"reference {name} {dt}: {time.time() - t0:.1f} s", file=sys.stderr, flush=True)


def DTYPES(torch):
    return {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def sync(torch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(torch, device, call, runs, warmup=3):
    for _ in range(warmup):
        call()
    sync(torch, device)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        call()
        sync(torch, device)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def copy_bandwidth(torch, device):
    """Bytes/s of a device-to-device copy (read + write), 1 GiB (16 MiB on the CPU)."""
    n = (1 << 28) if device.startswith("cuda") else (1 << 22)
    a = torch.empty(n, dtype=torch.float32, device=device)
    b = torch.empty_like(a)
    ms = median_ms(torch, device, lambda: b.copy_(a), 10)
    return 2 * 4 * n / (ms / 1e3)


def timings(torch, models, weights, device, dtypes, size, impl):
    """PyTorch eager medians: {"bandwidth_bytes_s", "rows": [...]} (rows keyed like
    scripts/gpu_compare.py's timed cases)."""
    tm = TIMINGS[size]
    rows = []
    for dt in dtypes:
        for name, entry in models.items():
            kind = entry["kind"]
            if name == "minilm" or name == "gpt2-small":
                continue  # timed: bert-base, resnet50, llama-1b (the cases)
            use_hf = not impl["vision" if kind == "resnet" else "text"].startswith("pure")
            r = Runner(torch, name, entry, weights[name], device, DTYPES(torch)[dt], use_hf)
            with torch.inference_mode():
                if kind == "bert":
                    for b in tm["enc_batches"]:
                        ids = torch.tensor([[(i * 7919 % 997 + 3) for i in range(tm["tokens"])]] * b)
                        mask = torch.ones_like(ids)
                        call = lambda: r.hidden(ids.to(device), mask.to(device)).float().cpu()
                        rows.append(dict(model=name, what=f"batch {b} x {tm['tokens']}", dtype=dt,
                                         ms=median_ms(torch, device, call, tm["runs"])))
                elif kind == "resnet":
                    img = entry["config"]["image"]
                    for b in tm["img_batches"]:
                        x = torch.tensor([((i * 7919) % 1000) / 500.0 - 1.0
                                          for i in range(3 * img * img)]).view(1, 3, img, img).repeat(b, 1, 1, 1)
                        call = lambda: r.classify(x.to(device=device, dtype=r.dtype)).float().cpu()
                        rows.append(dict(model=name, what=f"batch {b}", dtype=dt,
                                         ms=median_ms(torch, device, call, tm["runs"])))
                else:
                    vocab = entry["config"]["vocab"]
                    pre = torch.tensor([[(i * 7919 + 13) % vocab for i in range(tm["prefill"])]], device=device)
                    call = lambda: r.generate(pre, 1)
                    rows.append(dict(model=name, what=f"prefill {tm['prefill']}", dtype=dt,
                                     ms=median_ms(torch, device, call, tm["dec_runs"], warmup=1)))
                    for b in tm["dec_batches"]:
                        p = torch.tensor([[(i * 7919 + 13) % vocab for i in range(tm["prompt"])]] * b,
                                         device=device)
                        t1 = median_ms(torch, device, lambda: r.generate(p, 1), tm["dec_runs"], warmup=1)
                        tn = median_ms(torch, device, lambda: r.generate(p, tm["new"]), tm["dec_runs"], warmup=1)
                        rows.append(dict(model=name, what=f"decode batch {b}", dtype=dt,
                                         tok_s=b * (tm["new"] - 1) / ((tn - t1) / 1e3)))
            del r
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            print(f"timed {name} {dt}", file=sys.stderr, flush=True)
    return {"bandwidth_bytes_s": copy_bandwidth(torch, device), "rows": rows}


# ---------------------------------------------------------------- the graph runtime's programs

GRAPHS = {"bert-base": "graph-bert-base", "resnet50": "graph-resnet50"}


class Functional:
    """A pure-PyTorch module (no transformers / torchvision) around ref_bert or ref_resnet, its
    weights registered as buffers so that torch.export carries them."""

    @staticmethod
    def make(torch, kind, cfg, weights):
        import torch.nn.functional as F

        class M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.names = list(weights)
                for i, n in enumerate(self.names):
                    self.register_buffer(f"w{i}", weights[n].clone())

            def params(self):
                return {n: getattr(self, f"w{i}") for i, n in enumerate(self.names)}

        class Bert(M):
            def forward(self, input_ids, attention_mask):
                return ref_bert(F, torch, self.params(), cfg, input_ids, attention_mask)

        class ResNet(M):
            def forward(self, x):
                return ref_resnet(F, torch, self.params(), cfg, x)
        return (Bert if kind == "bert" else ResNet)().eval()


def graph_module(torch, name, entry, weights, impl):
    """(the eager module on the CPU in f32, what it is): BertModel wrapped to return
    last_hidden_state, or torchvision's ResNet; the functional ones without those packages."""
    kind = entry["kind"]
    use_hf = not impl["vision" if kind == "resnet" else "text"].startswith("pure")
    if not use_hf:
        return Functional.make(torch, kind, entry["config"], weights), "pure torch"
    if kind == "resnet":
        m = load_hf(torch, entry, weights, "cpu", torch.float32)
        return m, f"torchvision resnet{entry['config']['depth']}"
    import transformers
    # The folder has no pooler (torchless's encoder has none): none is made up here.
    m = transformers.BertModel.from_pretrained(entry["path"], add_pooling_layer=False)
    m = m.to(dtype=torch.float32).eval()

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          return_dict=False)[0]
    return Wrap(m).eval(), "transformers BertModel (last_hidden_state)"


def graph_inputs(torch, entry, batch, tokens, check):
    """The inputs of one call. Check inputs: BERT ids vary per row and the last row is padded
    from the middle on (attention_mask 0, ids 0); ResNet images differ per row. Timing inputs
    (check=False) are those of the hand-written rows."""
    if entry["kind"] == "bert":
        vocab = entry["config"]["vocab"]
        if not check:
            ids = torch.tensor([[(i * 7919 % 997 + 3) for i in range(tokens)]] * batch)
            return [ids, torch.ones_like(ids)]
        ids = torch.tensor([[((r * 131 + i * 7919) % (vocab - 3)) + 3 for i in range(tokens)]
                            for r in range(batch)])
        mask = torch.ones_like(ids)
        mask[-1, tokens // 2:] = 0
        ids[-1, tokens // 2:] = 0
        return [ids, mask]
    img = entry["config"]["image"]
    if not check:
        x = torch.tensor([((i * 7919) % 1000) / 500.0 - 1.0 for i in range(3 * img * img)])
        return [x.view(1, 3, img, img).repeat(batch, 1, 1, 1)]
    n = batch * 3 * img * img
    x = ((torch.arange(n, dtype=torch.int64) * 7919) % 1000).to(torch.float32) / 500.0 - 1.0
    return [x.view(batch, 3, img, img)]


def export_graphs(torch, models, weights, device, size, out, impl, timed):
    """Exports, references and times the programs; returns (manifest's `graphs`, timing rows).
    A family that fails is recorded with its error (the comparer fails its row) and the others
    still run."""
    tm = TIMINGS[size]
    graphs, rows = {}, []
    for name, model in GRAPHS.items():
        entry = models[name]
        kind = entry["kind"]
        d = os.path.join(out, "graphs", name)
        os.makedirs(d, exist_ok=True)
        g = {"program": os.path.join(d, "program.pt2"), "kind": kind}
        graphs[name] = g
        t0 = time.time()
        try:
            m, what = graph_module(torch, name, entry, weights[name], impl)
            g["module"] = what
            b = torch.export.Dim("batch", min=1, max=64)
            if kind == "bert":
                ex = graph_inputs(torch, entry, 2, 16, True)
                s = torch.export.Dim("seq", min=2, max=512)
                dyn = ({0: b, 1: s}, {0: b, 1: s})
                batch, tokens = tm["enc_batches"][-1], tm["tokens"]
            else:
                ex = graph_inputs(torch, entry, 2, 0, True)
                dyn = ({0: b},)
                batch, tokens = tm["img_batches"][-1], 0
            ep = torch.export.export(m, tuple(ex), dynamic_shapes=dyn)
            torch.export.save(ep, g["program"])
            del ep
            xs = graph_inputs(torch, entry, batch, tokens, True)
            g["inputs"] = []
            for i, x in enumerate(xs):
                g["inputs"].append(os.path.join(d, f"in_{i}.npy"))
                write_npy_torch(g["inputs"][-1], x)
            g["shapes"] = [list(x.shape) for x in xs]
            m = m.to(device)
            with torch.inference_mode():
                y = m(*[x.to(device) for x in xs])
            g["refs"] = [os.path.join(d, "ref_0.npy")]
            write_npy_torch(g["refs"][0], y.float().cpu())
            g["timing_inputs"] = {}
            batches = tm["enc_batches"] if kind == "bert" else tm["img_batches"]
            for bt in batches:
                xs = graph_inputs(torch, entry, bt, tm["tokens"], False)
                paths = []
                for i, x in enumerate(xs):
                    paths.append(os.path.join(d, f"t{bt}_{i}.npy"))
                    write_npy_torch(paths[-1], x)
                label = f"batch {bt} x {tm['tokens']}" if kind == "bert" else f"batch {bt}"
                g["timing_inputs"][label] = paths
                if timed:
                    call = lambda: m(*[x.to(device) for x in xs]).float().cpu()
                    with torch.inference_mode():
                        ms = median_ms(torch, device, call, tm["runs"])
                    rows.append(dict(model=model, what=label, dtype="f32", ms=ms))
            del m
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            print(f"exported {name} ({what}) and its reference: {time.time() - t0:.1f} s",
                  file=sys.stderr, flush=True)
        except Exception as e:
            import traceback
            traceback.print_exc()
            g["error"] = f"{type(e).__name__}: {e}"
            print(f"error: exporting {name}: {g['error']}", file=sys.stderr, flush=True)
    return graphs, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", choices=["full", "tiny"], default="full")
    ap.add_argument("--dtypes", default="f32,f16,bf16")
    ap.add_argument("--time-dtypes", default="f32,bf16")
    ap.add_argument("--no-timings", action="store_true")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None and args.size == "full":
        print("error: full-size folders need torch (pure Python writes tiny ones only)", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    if torch is not None:
        torch.manual_seed(0)
        if args.device == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)
    models, weights = write_models(args.out, args.size, torch)
    manifest = {"size": args.size, "device": args.device, "models": models,
                "timings": TIMINGS[args.size], "torch": None, "reference": None}
    status = 0
    if torch is None:
        print("no torch: model folders written, no PyTorch reference or timings", file=sys.stderr)
    else:
        manifest["torch"] = torch.__version__
        manifest["reference"] = impl = reference_impl(torch)
        if args.device.startswith("cuda"):
            # f32 means f32 (candle's f32 GEMMs do not use TF32 either): cuDNN convolutions
            # would otherwise run ResNet's f32 reference in TF32, at about 1e-3 error.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            if not torch.cuda.is_available():
                print("error: torch sees no CUDA device", file=sys.stderr)
                return 1
            manifest["card"] = torch.cuda.get_device_name(0)
        dtypes = args.dtypes.split(",")
        tt = None
        try:
            references(torch, models, weights, args.device, dtypes, args.out, impl)
            if not args.no_timings:
                tt = timings(torch, models, weights, args.device, args.time_dtypes.split(","),
                             args.size, impl)
        except Exception as e:  # reported, and the manifest still written for the comparer
            import traceback
            traceback.print_exc()
            print(f"error: the PyTorch side failed: {e}", file=sys.stderr)
            status = 1
        graphs, rows = export_graphs(torch, models, weights, args.device, args.size, args.out,
                                     impl, not args.no_timings)
        manifest["graphs"] = graphs
        if any("error" in g for g in graphs.values()):
            status = 1
        if tt is not None:
            tt["rows"] += rows
            with open(os.path.join(args.out, "torch-timings.json"), "w") as f:
                json.dump(tt, f, indent=1)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"gpu_models.py: {time.time() - t0:.1f} s", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
