"""Fixtures for `torchless run` (the pure-Rust torch.export .pt2 interpreter).

    /tmp/tvenv/bin/python scripts/graph_fixtures.py tests/fixtures/graph [case ...]

Needs torch (2.15 was used), transformers and torchvision. For every case it writes
tests/fixtures/graph/<case>/:

  program.pt2        torch.export.save(torch.export.export(model.eval(), args, dynamic_shapes=...))
                     (training IR: in-place ops such as relu_ / add_ stay as exported)
  program_core.pt2   the same ExportedProgram after .run_decompositions() (core ATen)
  in_<i>.npy         the user inputs at the export size, in the program's user-input order
  out_<i>.npy        the flattened (pytree order) outputs of the EAGER model on those inputs
  dyn/in_<i>.npy     the same at other sizes inside the declared Dim ranges (dynamic cases only)
  dyn/out_<i>.npy
  case.json          inputs / outputs (dtype, shape, for ops_* cases the op of each output),
                     dynamic description, suggested rtol, op counts of both programs, notes

bf16 tensors are saved as float32 (numpy has no bf16); case.json gives the real dtype ("bfloat16")
and "saved_as": "float32". The script asserts that ep.module() (both programs) matches eager.
Refusal cases (refuse_*) only get program.pt2 and case.json. Finally it writes OPS.md: the union of
node targets, argument kinds and symbolic size expressions over every archive.

Deterministic: torch.manual_seed(0) before building each case, another seed for its inputs.
"""

import io
import json
import math
import os
import re
import shutil
import sys
import traceback
import zipfile
from collections import Counter, defaultdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.export import Dim
from torch.utils._pytree import tree_flatten

torch.backends.mha.set_fastpath_enabled(False)

# Layers of the transformer cases (vit_tiny, transformer_encoder*, bert_tiny, llama_tiny). One
# layer, not two: each layer adds ~150-300 KB of models/*.json per archive and every fixture
# together must stay under 3 MB; a second identical layer exercises nothing new.
LAYERS = 1

DTYPE_NAMES = {
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.float64: "float64",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.bool: "bool",
    torch.uint8: "uint8",
}


def to_np(t):
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.contiguous().numpy()


def tensor_meta(t):
    d = {"dtype": DTYPE_NAMES.get(t.dtype, str(t.dtype)), "shape": list(t.shape)}
    if t.dtype == torch.bfloat16:
        d["saved_as"] = "float32"
    return d


def close(a, b, rtol, atol):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype in (torch.bool, torch.int64, torch.int32):
        return bool(torch.equal(a, b))
    return bool(torch.allclose(a.float(), b.float(), rtol=rtol, atol=atol, equal_nan=True))


# ---------------------------------------------------------------- archive analysis


def archive_model_json(path):
    with zipfile.ZipFile(path) as z:
        for n in z.namelist():
            parts = n.split("/")
            if len(parts) >= 2 and parts[-2] == "models" and n.endswith(".json"):
                return json.loads(z.read(n))
    raise RuntimeError(f"no models/*.json in {path}")


def walk_graph(g, visit):
    for node in g["nodes"]:
        visit(node)
        for inp in node.get("inputs", []):
            a = inp.get("arg", {})
            if "as_graph" in a:
                walk_graph(a["as_graph"]["graph"], visit)


def analyse(path):
    """Return (op Counter, {arg kind: example}, set of expr strings, other notes)."""
    m = archive_model_json(path)
    ops = Counter()
    kinds = {}
    exprs = set()

    def visit(node):
        ops[node["target"]] += 1
        for inp in node.get("inputs", []):
            a = inp.get("arg", {})
            for k in a:
                if k not in kinds:
                    kinds[k] = {"target": node["target"], "name": inp.get("name"), "arg": a}

    g = m["graph_module"]["graph"]
    walk_graph(g, visit)

    def find_exprs(o):
        if isinstance(o, dict):
            if "as_expr" in o and isinstance(o["as_expr"], dict):
                es = o["as_expr"].get("expr_str")
                if es:
                    exprs.add(es)
            for v in o.values():
                find_exprs(v)
        elif isinstance(o, list):
            for v in o:
                find_exprs(v)

    find_exprs(g.get("tensor_values", {}))
    find_exprs(g.get("sym_int_values", {}))
    return ops, kinds, exprs, m


# ---------------------------------------------------------------- models

ACTS = [
    "relu", "relu_", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "leaky_relu", "elu", "selu",
    "celu", "softplus", "hardswish", "hardsigmoid", "hardtanh", "relu6", "mish", "logsigmoid",
    "softmax", "log_softmax", "glu", "prelu",
]


class MlpActs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 16)
        self.prelu = nn.PReLU(32)
        self.relu_inplace = nn.ReLU(inplace=True)

    def forward(self, x):
        h = self.fc1(x)
        outs = []
        for a in ACTS:
            if a == "relu":
                y = F.relu(h)
            elif a == "relu_":
                y = self.relu_inplace(h.clone())
                y = torch.relu_(y * 1.5)
            elif a == "gelu":
                y = F.gelu(h)
            elif a == "gelu_tanh":
                y = F.gelu(h, approximate="tanh")
            elif a == "leaky_relu":
                y = F.leaky_relu(h, 0.1)
            elif a == "elu":
                y = F.elu(h, alpha=0.7)
            elif a == "celu":
                y = F.celu(h, alpha=1.3)
            elif a == "softplus":
                y = F.softplus(h, beta=2.0, threshold=5.0)
            elif a == "hardtanh":
                y = F.hardtanh(h, -0.5, 0.7)
            elif a == "softmax":
                y = F.softmax(h, dim=-1)
            elif a == "log_softmax":
                y = F.log_softmax(h, dim=1)
            elif a == "glu":
                y = F.glu(h, dim=-1)
            elif a == "prelu":
                y = self.prelu(h)
            else:
                y = getattr(F, a)(h)
            outs.append(y)
        chained = self.fc2(F.silu(F.gelu(h)))
        outs.append(chained)
        return tuple(outs)


def conv_bn(cin, cout, k, s=1, p=0, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    def __init__(self, c, mid):
        super().__init__()
        self.conv1 = nn.Conv2d(c, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x
        return self.relu(out)


def randomize_bn(m):
    for mod in m.modules():
        if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
            with torch.no_grad():
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m


class ResNetSmall(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.layer3 = Bottleneck(16, 8)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class MobileNetBlock(nn.Module):
    def __init__(self, c=16, e=32, se=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.Hardswish())
        self.expand = nn.Sequential(nn.Conv2d(c, e, 1, bias=False), nn.BatchNorm2d(e), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(e, e, 3, 1, 1, groups=e, bias=False), nn.BatchNorm2d(e))
        self.se_fc1 = nn.Conv2d(e, se, 1)
        self.se_fc2 = nn.Conv2d(se, e, 1)
        self.project = nn.Sequential(nn.Conv2d(e, c, 1, bias=False), nn.BatchNorm2d(c))
        self.classifier = nn.Sequential(nn.Linear(c, 24), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(24, 10))

    def forward(self, x):
        x = self.stem(x)
        h = self.dw(self.expand(x))
        s = F.adaptive_avg_pool2d(h, 1)
        s = F.hardsigmoid(self.se_fc2(F.relu(self.se_fc1(s))))
        h = h * s
        h = self.project(h)
        x = h + x
        x = torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)
        return self.classifier(x)


class ConvNextBlock(nn.Module):
    def __init__(self, c=16):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 4, 4)
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pw1 = nn.Linear(c, 4 * c)
        self.pw2 = nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.rand(c) * 0.5 + 0.5)
        self.cf_w = nn.Parameter(torch.rand(c) + 0.5)
        self.cf_b = nn.Parameter(torch.randn(c) * 0.1)

    def forward(self, x):
        x = self.stem(x)
        inp = x
        x = self.dw(x)
        x = x.permute(0, 2, 3, 1)
        x = self.pw2(F.gelu(self.pw1(self.norm(x))))
        x = self.gamma * x
        x = x.permute(0, 3, 1, 2)
        x = inp + x
        # channels-first LayerNorm by hand
        u = x.mean(1, keepdim=True)
        v = (x - u).pow(2).mean(1, keepdim=True)
        v2 = x.var(1, keepdim=True, unbiased=False)
        y = (x - u) * torch.rsqrt(v2 + 1e-6)
        y = self.cf_w[:, None, None] * y + self.cf_b[:, None, None]
        return y, v


class TorchvisionViT(nn.Module):
    def __init__(self):
        super().__init__()
        from torchvision.models import VisionTransformer

        self.m = VisionTransformer(
            image_size=32, patch_size=8, num_layers=LAYERS, num_heads=2, hidden_dim=32, mlp_dim=64,
            num_classes=10,
        )
        with torch.no_grad():
            self.m.heads.head.weight.normal_(0, 0.1)

    def forward(self, x):
        return self.m(x)


class Encoder(nn.Module):
    def __init__(self, prenorm=False):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=32, nhead=4, dim_feedforward=64, batch_first=True, dropout=0.0,
            activation="gelu" if prenorm else "relu", norm_first=prenorm,
        )
        self.enc = nn.TransformerEncoder(layer, num_layers=LAYERS, enable_nested_tensor=False)
        self.prenorm = prenorm

    def forward(self, x, mask):
        if self.prenorm:
            s = x.shape[1]
            causal = torch.triu(torch.ones(s, s, dtype=torch.bool, device=x.device), diagonal=1)
            return self.enc(x, mask=causal, src_key_padding_mask=mask, is_causal=True)
        return self.enc(x, src_key_padding_mask=mask)


class Bert(nn.Module):
    def __init__(self):
        super().__init__()
        from transformers import BertConfig, BertModel

        cfg = BertConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64, attn_implementation="sdpa",
        )
        self.m = BertModel(cfg)

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.m(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            return_dict=False,
        )
        return out[0], out[1]


class Llama(nn.Module):
    def __init__(self):
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(
            vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=LAYERS,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            rope_theta=10000.0, attn_implementation="sdpa",
        )
        self.m = LlamaForCausalLM(cfg)

    def forward(self, input_ids, attention_mask):
        return self.m(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


class UNetTiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.c3 = nn.Conv2d(16, 8, 3, padding=1)
        self.head = nn.Conv2d(8 * 4, 1, 1)

    def forward(self, x):
        h1 = F.relu(self.c1(x))
        h2 = F.relu(self.c2(F.max_pool2d(h1, 2)))
        u = self.up(h2)
        h3 = F.relu(self.c3(torch.cat([u, h1], dim=1)))
        small = F.max_pool2d(h3, 2)
        n = F.interpolate(small, scale_factor=2, mode="nearest")
        b = F.interpolate(small, scale_factor=2, mode="bilinear", align_corners=False)
        a = F.interpolate(small, scale_factor=2, mode="bilinear", align_corners=True)
        s = F.interpolate(F.adaptive_avg_pool2d(h3, 4), size=(16, 16), mode="bilinear",
                          align_corners=False)
        out = torch.sigmoid(self.head(torch.cat([n, b, a, h3], dim=1)))
        return out, s


# ---------------------------------------------------------------- op-coverage modules
# Each returns a tuple; OPS[name] lists the op of each output in order.


class OpsElementwise(nn.Module):
    OUT = [
        "clamp", "clamp_min", "clamp_max", "abs", "neg", "exp", "log", "log1p", "sqrt", "rsqrt",
        "pow(tensor,scalar)", "pow(scalar,tensor)", "pow(tensor,tensor)", "reciprocal", "sin", "cos",
        "erf", "floor", "ceil", "round", "round(decimals=1)", "trunc", "remainder", "fmod",
        "where", "masked_fill", "eq(tensor)", "ne(scalar)", "lt(tensor)", "le(scalar)", "gt(scalar)",
        "ge(tensor)", "logical_and", "logical_or", "logical_not", "logical_xor", "bitwise_and(bool)",
        "bitwise_or(bool)", "bitwise_not(bool)", "bitwise_xor(bool)", "minimum", "maximum",
        "sub(alpha)", "div", "div(rounding_mode=floor)", "sign", "tanh",
    ]

    def forward(self, x, y):
        p = x.abs() + 0.1
        m1 = x > 0
        m2 = y > 0
        return (
            x.clamp(-0.5, 0.5), x.clamp_min(-0.2), torch.clamp_max(x, 0.3), x.abs(), -x, x.exp(),
            p.log(), p.log1p(), p.sqrt(), p.rsqrt(), x ** 3, 2.0 ** x, p ** y, p.reciprocal(),
            x.sin(), x.cos(), torch.erf(x), (x * 3).floor(), (x * 3).ceil(), (x * 3).round(),
            torch.round(x * 3, decimals=1), (x * 3).trunc(), torch.remainder(x * 5, 1.5),
            torch.fmod(x * 5, 1.5), torch.where(m1, x, y), x.masked_fill(m2, -1.0), x == y,
            x != 0.0, x < y, x <= 0.1, x > -0.1, x >= y, torch.logical_and(m1, m2),
            torch.logical_or(m1, m2), torch.logical_not(m1), torch.logical_xor(m1, m2), m1 & m2,
            m1 | m2, ~m1, m1 ^ m2, torch.minimum(x, y), torch.maximum(x, y), torch.sub(x, y, alpha=2),
            x / (y.abs() + 0.5), torch.div(x * 4, y.abs() + 0.5, rounding_mode="floor"), x.sign(),
            x.tanh(),
        )


class OpsReduce(nn.Module):
    OUT = [
        "sum(all)", "sum(dim=1)", "sum(dim=-1,keepdim)", "mean(dim=(1,2))", "mean(dim=-2,keepdim)",
        "amax(dim=-1)", "amin(dim=(0,2),keepdim)", "prod(dim=1)", "argmax(dim=-1)", "argmax(all)",
        "argmin(dim=1,keepdim)", "var(dim=1,unbiased=True)", "var(dim=-1,unbiased=False)",
        "std(dim=1,correction=0)", "std(dim=(1,2),correction=1,keepdim)", "var(all)",
        "cumsum(float,dim=1)", "cumsum(int64,dim=-1)", "max(dim=1).values", "max(dim=1).indices",
        "min(dim=-1,keepdim).values", "min(dim=-1,keepdim).indices", "max(all)", "min(all)",
        "topk(k=3,dim=-1).values", "topk.indices", "sort(dim=-1,descending).values",
        "sort.indices", "logsumexp(dim=-1)", "norm(p=2,dim=-1)", "any(dim=-1)", "all(dim=1)",
    ]

    def forward(self, x):
        xi = (x * 10).to(torch.int64)
        mx = x.max(dim=1)
        mn = x.min(dim=-1, keepdim=True)
        tk = torch.topk(x, 3, dim=-1)
        st = torch.sort(x, dim=-1, descending=True)
        return (
            x.sum(), x.sum(1), x.sum(-1, keepdim=True), x.mean((1, 2)), x.mean(-2, keepdim=True),
            x.amax(-1), x.amin((0, 2), keepdim=True), x.prod(1), x.argmax(-1), x.argmax(),
            x.argmin(1, keepdim=True), x.var(1, unbiased=True), x.var(-1, unbiased=False),
            x.std(1, correction=0), x.std((1, 2), correction=1, keepdim=True), x.var(),
            x.cumsum(1), xi.cumsum(-1), mx.values, mx.indices, mn.values, mn.indices, x.max(),
            x.min(), tk.values, tk.indices, st.values, st.indices, torch.logsumexp(x, -1),
            torch.linalg.vector_norm(x, 2, dim=-1), (x > 0.5).any(-1), (x > -2).all(1),
        )


class OpsShape(nn.Module):
    OUT = [
        "slice(-3:,dim=1)", "slice(1:INT64_MAX:2,dim=2)", "select(dim=1,idx=-1)", "narrow(2,1,3)",
        "expand", "repeat", "flip(dims=(1,-1))", "squeeze(dim)", "unsqueeze(-1)", "view", "reshape(-1)",
        "flatten(1)", "transpose(1,2)", "permute(2,0,1)", "contiguous(after transpose)", "cat(dim=-1)",
        "stack(dim=1)", "split(2,dim=2)[0]", "split[-1]", "chunk(2,dim=1)[1]", "unbind(dim=2)[0]",
        "unbind[2]", "triu(diagonal=1)", "tril(diagonal=-1)", "squeeze(all)", "movedim", "roll",
        "t()", "x.T-like mT", "expand_as",
    ]

    def forward(self, x):
        b, s, d = x.shape
        one = x[:, :1, :1]
        sp = torch.split(x, 2, dim=2)
        ub = torch.unbind(x, dim=2)
        return (
            x[:, -3:], x[:, :, 1::2], x[:, -1], x.narrow(2, 1, 3), one.expand(b, s, d),
            x.repeat(1, 2, 1), x.flip((1, -1)), one.squeeze(2), x.unsqueeze(-1), x.view(b, s * d),
            x.reshape(-1), x.flatten(1), x.transpose(1, 2), x.permute(2, 0, 1),
            x.transpose(1, 2).contiguous(), torch.cat([x, x * 2], dim=-1),
            torch.stack([x, -x], dim=1), sp[0], sp[-1], x.chunk(2, dim=1)[1], ub[0], ub[2],
            torch.triu(x, diagonal=1), torch.tril(x, diagonal=-1), one.squeeze(), x.movedim(0, -1),
            torch.roll(x, 1, dims=1), x[0].t(), x.mT, one.expand_as(x),
        )


class OpsIndex(nn.Module):
    OUT = [
        "gather(dim=1)", "index_select(dim=-1)", "index(x[0][idx])", "index(x[:,idx])",
        "setitem y[:, idx] = 7.0 (training IR: index_fill_ on a clone; core: index_put)", "setitem z[x > 0.5] = 0.0 (training IR: masked_fill_ on a clone; core: where)",
        "index_put(accumulate)", "scatter(dim=1,src)", "scatter_add", "embedding", "one_hot(5)",
        "index(x[0][idx2d])", "where(x>0, x, zeros_like)",
    ]

    def forward(self, x, idx, gidx):
        # x f32 [B,6,4], idx int64 [3] (values < 4), gidx int64 [B,6,2]
        y = x.clone()
        y[:, idx] = 7.0
        z = x.clone()
        z[x > 0.5] = 0.0
        acc = torch.zeros(4, 4, device=x.device).index_put((idx,), x[0, :3], accumulate=True)
        sc = torch.zeros_like(x).scatter(2, gidx, torch.ones_like(x))
        sca = torch.zeros_like(x).scatter_add(2, gidx, x[:, :, :2])
        emb = F.embedding(gidx[..., 0], x[0, :4])
        oh = F.one_hot(idx, 5)
        return (
            torch.gather(x, 2, gidx), torch.index_select(x, -1, idx), x[0][idx], x[:, idx],
            y, z, acc, sc, sca, emb, oh,
            x[0][gidx[0]], torch.where(x > 0, x, torch.zeros_like(x)),
        )


class OpsNn(nn.Module):
    OUT = [
        "sdpa(no mask)", "sdpa(float mask)", "sdpa(bool mask)", "sdpa(is_causal)", "sdpa(enable_gqa)",
        "layer_norm", "group_norm(2 groups)", "rms_norm", "batch_norm(eval,1d)", "avg_pool2d",
        "max_pool2d", "adaptive_avg_pool2d(3x3)", "pad(constant)", "pad(reflect)", "pad(replicate)",
        "pixel_shuffle(2)", "conv1d", "conv2d(dilation=2,groups=2)", "linear(no bias)",
        "bmm", "matmul(broadcast)", "einsum(bhqd,bhkd->bhqk)", "baddbmm", "addmm", "mm",
        "max_pool2d_with_indices.indices", "avg_pool1d", "softmax(dim=1)", "interpolate(nearest-exact)",
    ]

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(8)
        self.gn = nn.GroupNorm(2, 8)
        self.ln = nn.LayerNorm(8)
        self.rms_w = nn.Parameter(torch.rand(8) + 0.5)
        self.c1 = nn.Conv1d(8, 6, 3, padding=1)
        self.c2 = nn.Conv2d(8, 4, 3, dilation=2, groups=2, padding=2)
        self.lin = nn.Linear(8, 5, bias=False)
        self.w = nn.Parameter(torch.randn(8, 3))
        self.bias = nn.Parameter(torch.randn(3))

    def forward(self, q, k, v, img):
        # q,k,v [B,4,S,8]; img [B,8,4,4]
        b, h, s, d = q.shape
        mask = torch.triu(torch.full((s, s), -1e4, device=q.device), 1)
        bmask = torch.tril(torch.ones(s, s, dtype=torch.bool, device=q.device))
        kg, vg = k[:, :2], v[:, :2]
        gqa = F.scaled_dot_product_attention(q, kg, vg, enable_gqa=True)
        seq = q[:, 0]  # [B,S,8]
        mp, mpi = F.max_pool2d(img, 2, return_indices=True)
        return (
            F.scaled_dot_product_attention(q, k, v),
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
            F.scaled_dot_product_attention(q, k, v, attn_mask=bmask),
            F.scaled_dot_product_attention(q, k, v, is_causal=True),
            gqa,
            self.ln(seq), self.gn(img), F.rms_norm(seq, (8,), self.rms_w, eps=1e-6),
            self.bn(seq.transpose(1, 2)), F.avg_pool2d(img, 2), F.max_pool2d(img, 3, 2, 1),
            F.adaptive_avg_pool2d(img, 3), F.pad(img, (1, 2, 0, 1), value=0.5),
            F.pad(img, (2, 1, 1, 2), mode="reflect"), F.pad(img, (1, 1, 2, 0), mode="replicate"),
            F.pixel_shuffle(img, 2), self.c1(seq.transpose(1, 2)), self.c2(img), self.lin(seq),
            torch.bmm(seq, seq.transpose(1, 2)), torch.matmul(q, self.w), torch.einsum(
                "bhqd,bhkd->bhqk", q, k), torch.baddbmm(seq[:, :, :1], seq, seq.transpose(1, 2),
                                                       beta=0.5, alpha=2.0),
            torch.addmm(self.bias, seq[0], self.w), torch.mm(seq[0], self.w), mpi,
            F.avg_pool1d(seq, 2), F.softmax(img, dim=1),
            F.interpolate(img, scale_factor=2, mode="nearest-exact"),
        )


class OpsCreate(nn.Module):
    OUT = [
        "arange(end) int64", "arange(start,end,step) int64", "arange float(0,2.5,0.5)",
        "arange(S) dynamic", "full", "ones", "zeros", "ones_like", "zeros_like", "full_like",
        "empty-free new_ones", "new_zeros", "full(int64)", "eye", "linspace", "tensor constant add",
        "triu(ones bool, diagonal=1)", "arange(S).unsqueeze(0)+x",
    ]

    def forward(self, x):
        s = x.shape[1]
        return (
            torch.arange(5), torch.arange(2, 11, 3), torch.arange(0.0, 2.5, 0.5),
            torch.arange(s, device=x.device), torch.full((2, 3), 1.5), torch.ones(2, s),
            torch.zeros(3, dtype=torch.int64), torch.ones_like(x), torch.zeros_like(x, dtype=torch.bool),
            torch.full_like(x, -2.0), x.new_ones(2, 2), x.new_zeros(s), torch.full((2,), 7, dtype=torch.int64),
            torch.eye(3), torch.linspace(0, 1, 5), x + torch.tensor([1.0, 2.0, 3.0, 4.0]),
            torch.triu(torch.ones(s, s, dtype=torch.bool), diagonal=1),
            torch.arange(s, device=x.device).unsqueeze(0).unsqueeze(-1) + x,
        )


class OpsInt(nn.Module):
    OUT = [
        "add int64", "mul int64", "sub int64", "floor_divide int64", "true div int64->float32",
        "remainder int64", "neg int64", "abs int64", "int64 + float scalar -> float32",
        "bool + int64 -> int64", "f16 tensor + f32 0-dim tensor -> f16", "int64 * 2.5",
        "to(int64) from float", "to(bool) from float", "half()", "float() from int64",
        "to(bfloat16) (saved f32)", "int32 cast", "sum(bool) -> int64", "cumsum(bool)->int64",
        "max(int64,dim=0).values", "bitwise_and int64", "bitwise_or int64", "shift-free pow int64",
        "clamp int64", "where int64", "eq int64 scalar",
    ]

    def forward(self, a, b, m, h, s0):
        # a,b int64 [B,5]; m bool [B,5]; h f16 [B,5]; s0 f32 0-dim
        return (
            a + b, a * b, a - b, torch.floor_divide(a, b.abs() + 1), a / (b.abs() + 1),
            torch.remainder(a, b.abs() + 1), -a, a.abs(), a + 0.5, m + a, h + s0, a * 2.5,
            (h.float() * 3).to(torch.int64), h.float().to(torch.bool), a.half(), a.float(),
            h.float().to(torch.bfloat16), a.to(torch.int32), m.sum(-1), m.cumsum(-1),
            a.max(dim=0).values, a & b, a | b, a ** 2, a.clamp(-3, 3), torch.where(m, a, b), a == 2,
        )


class MlpF16(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.ln = nn.LayerNorm(32)
        self.fc2 = nn.Linear(32, 8)

    def forward(self, x):
        h = F.gelu(self.fc1(x))
        h = self.ln(h)
        return self.fc2(F.silu(h)), F.softmax(h, dim=-1)


class MixedCast(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(16, 16) * 0.3)
        self.pos = nn.Embedding(64, 16)

    def forward(self, x):
        # x f32 [B,S,16]
        s = x.shape[1]
        positions = torch.arange(s, device=x.device, dtype=torch.int64)
        x = x + self.pos(positions)
        a = (x.half() @ self.w.half()).float()
        bq = (x.to(torch.bfloat16) @ self.w.to(torch.bfloat16)).to(torch.float32)
        return a + bq, positions * 2


# ---------------------------------------------------------------- refusal models


@torch.library.custom_op("mylib::twice", mutates_args=())
def twice(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@twice.register_fake
def _(x):
    return torch.empty_like(x)


class RefuseCustom(nn.Module):
    def forward(self, x):
        return torch.ops.mylib.twice(x) + 1


class RefuseCond(nn.Module):
    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda t: t.sin(), lambda t: t.cos(), (x,))


class RefuseWhile(nn.Module):
    def forward(self, x):
        from torch._higher_order_ops.while_loop import while_loop

        def cond_fn(i, t):
            return i < 3

        def body_fn(i, t):
            return i + 1, t * 2

        return while_loop(cond_fn, body_fn, (torch.tensor(0), x))[1]


# ---------------------------------------------------------------- cases


def f32(*shape):
    return torch.randn(*shape)


def case_defs():
    """name -> dict(build, args(gen), dyn_args(gen), dynamic_shapes, dynamic(text), ...)."""
    B = Dim("batch", min=1, max=16)
    S = Dim("seq", min=2, max=64)
    cases = {}

    cases["mlp_acts"] = dict(
        build=MlpActs, args=lambda: (f32(3, 16),), dyn=lambda: (f32(5, 16),),
        ds=({0: B},), dynamic="dim 0 of x: batch in [1,16]; export 3, dyn 5",
        out_ops=ACTS + ["chained fc2(silu(gelu(fc1 x)))"],
    )
    cases["resnet_small"] = dict(
        build=lambda: randomize_bn(ResNetSmall()), args=lambda: (f32(2, 3, 32, 32),),
        dyn=lambda: (f32(1, 3, 32, 32),), ds=({0: B},), dynamic="batch in [1,16]; export 2, dyn 1",
        notes="exported at batch 2 (a size-1 example dim is specialised by torch.export); the "
              "1x3x32x32 input is the dyn/ fixture",
    )
    cases["mobilenet_block"] = dict(
        build=lambda: randomize_bn(MobileNetBlock()), args=lambda: (f32(2, 3, 16, 16),),
        dyn=lambda: (f32(4, 3, 16, 16),), ds=({0: B},), dynamic="batch in [1,16]; export 2, dyn 4",
    )
    cases["convnext_block"] = dict(
        build=ConvNextBlock, args=lambda: (f32(2, 3, 32, 32),), dyn=lambda: (f32(3, 3, 32, 32),),
        ds=({0: B},), dynamic="batch in [1,16]; export 2, dyn 3",
        out_ops=["channels-first hand LayerNorm of block output", "hand (x-mean)^2 mean (biased var)"],
    )
    cases["vit_tiny"] = dict(
        build=TorchvisionViT, args=lambda: (f32(2, 3, 32, 32),), dyn=lambda: (f32(3, 3, 32, 32),),
        ds=({0: B},), dynamic="batch in [1,16]; export 2, dyn 3",
        notes="torchvision.models.VisionTransformer (torchvision 0.29.2); head weight re-initialised "
              "from N(0,0.1) because torchvision zero-inits it",
    )

    def enc_args(b, s, pad):
        x = f32(b, s, 32)
        m = torch.zeros(b, s, dtype=torch.bool)
        m[0, s - pad:] = True
        return (x, m)

    cases["transformer_encoder"] = dict(
        build=lambda: Encoder(False), args=lambda: enc_args(2, 8, 3), dyn=lambda: enc_args(3, 11, 4),
        ds=({0: B, 1: S}, {0: B, 1: S}),
        dynamic="x [batch,seq,32], mask [batch,seq]; batch in [1,16], seq in [2,64]; export 2x8, dyn 3x11",
        notes="torch.backends.mha.set_fastpath_enabled(False) and enable_nested_tensor=False, so the "
              "graph is the plain composite path; mask True = padded key",
    )
    cases["transformer_encoder_gelu_prenorm"] = dict(
        build=lambda: Encoder(True), args=lambda: enc_args(2, 8, 3), dyn=lambda: enc_args(3, 11, 4),
        ds=({0: B, 1: S}, {0: B, 1: S}),
        dynamic="as transformer_encoder", notes="norm_first=True, gelu, causal bool mask built in "
        "forward with triu(ones bool, 1), is_causal=True, plus the key padding mask",
    )

    def bert_args(b, s):
        ids = torch.randint(1, 100, (b, s))
        am = torch.ones(b, s, dtype=torch.int64)
        am[0, s - 2:] = 0
        ids[0, s - 2:] = 0
        tt = torch.zeros(b, s, dtype=torch.int64)
        tt[:, s // 2:] = 1
        return (ids, am, tt)

    cases["bert_tiny"] = dict(
        build=Bert, args=lambda: bert_args(2, 8), dyn=lambda: bert_args(3, 13),
        ds=({0: B, 1: S}, {0: B, 1: S}, {0: B, 1: S}),
        dynamic="all inputs [batch,seq]; batch in [1,16], seq in [2,64]; export 2x8, dyn 3x13",
        out_ops=["last_hidden_state", "pooler_output"],
        notes="row 0 has 2 padded positions at the end (attention_mask 0)",
    )

    def llama_args(b, s):
        ids = torch.randint(0, 128, (b, s))
        am = torch.ones(b, s, dtype=torch.int64)
        am[0, :3] = 0
        return (ids, am)

    cases["llama_tiny"] = dict(
        build=Llama, args=lambda: llama_args(2, 8), dyn=lambda: llama_args(3, 12),
        ds=({0: B, 1: S}, {0: B, 1: S}),
        dynamic="[batch,seq]; batch in [1,16], seq in [2,64]; export 2x8, dyn 3x12",
        out_ops=["logits"], notes="row 0 LEFT-padded (first 3 positions attention_mask 0); "
        "use_cache=False. Logits at fully-masked query rows are whatever sdpa gives",
    )
    H8 = Dim("h8", min=1, max=4)
    W8 = Dim("w8", min=1, max=4)
    cases["unet_tiny"] = dict(
        build=UNetTiny, args=lambda: (f32(2, 3, 16, 16),), dyn=lambda: (f32(3, 3, 24, 32),),
        ds=({0: B, 2: 8 * H8, 3: 8 * W8},), ds_fallback=({0: B},),
        dynamic="batch in [1,16]; H = 8*h8, W = 8*w8 with h8,w8 in [1,4]; export 2x16x16, dyn 3x24x32",
        out_ops=["sigmoid(head(cat[nearest, bilinear, bilinear align_corners, skip]))",
                 "interpolate(adaptive_avg_pool2d(h,4), size=(16,16), bilinear)"],
    )
    cases["ops_elementwise"] = dict(
        build=OpsElementwise, args=lambda: (f32(2, 3, 4), f32(2, 3, 4)),
        dyn=lambda: (f32(4, 3, 4), f32(4, 3, 4)), ds=({0: B}, {0: B}),
        dynamic="batch in [1,16]; export 2, dyn 4", out_ops=OpsElementwise.OUT,
    )
    cases["ops_reduce"] = dict(
        build=OpsReduce, args=lambda: (f32(2, 5, 6),), dyn=lambda: (f32(3, 5, 6),),
        ds=({0: B},), dynamic="batch in [1,16]; export 2, dyn 3", out_ops=OpsReduce.OUT,
    )
    cases["ops_shape"] = dict(
        build=OpsShape, args=lambda: (f32(2, 6, 5),), dyn=lambda: (f32(3, 6, 5),),
        ds=({0: B},),
        dynamic="x [batch,6,5]; batch in [1,16]; export 2, dyn 3",
        notes="dim 1 static: with it dynamic, chunk/split/slices constrain it (export refused)",
        out_ops=OpsShape.OUT,
    )

    def idx_args(b):
        return (f32(b, 6, 4), torch.tensor([2, 0, 3]), torch.randint(0, 4, (b, 6, 2)))

    cases["ops_index"] = dict(
        build=OpsIndex, args=lambda: idx_args(2), dyn=lambda: idx_args(3),
        ds=({0: B}, None, {0: B}), dynamic="x and gidx batch in [1,16]; export 2, dyn 3",
        out_ops=OpsIndex.OUT,
        notes="not included: reading x[bool_mask], masked_select and nonzero (output size depends "
              "on the data: unbacked symbols); idx is a static-size int64 input [3]",
    )
    cases["ops_nn"] = dict(
        build=lambda: randomize_bn1d(OpsNn()),
        args=lambda: (f32(2, 4, 6, 8), f32(2, 4, 6, 8), f32(2, 4, 6, 8), f32(2, 8, 4, 4)),
        dyn=lambda: (f32(3, 4, 6, 8), f32(3, 4, 6, 8), f32(3, 4, 6, 8), f32(3, 8, 4, 4)),
        ds=({0: B}, {0: B}, {0: B}, {0: B}), dynamic="batch in [1,16]; export 2, dyn 3",
        out_ops=OpsNn.OUT,
    )
    cases["ops_create"] = dict(
        build=OpsCreate, args=lambda: (f32(2, 6, 4),), dyn=lambda: (f32(2, 9, 4),),
        ds=({1: Dim("s", min=2, max=32)},), dynamic="dim 1 in [2,32]; export 6, dyn 9",
        out_ops=OpsCreate.OUT,
    )

    def int_args(b):
        a = torch.randint(-9, 10, (b, 5))
        bb = torch.randint(-9, 10, (b, 5))
        return (a, bb, torch.rand(b, 5) > 0.5, torch.randn(b, 5).half(), torch.tensor(0.25))

    cases["ops_int"] = dict(
        build=OpsInt, args=lambda: int_args(2), dyn=lambda: int_args(4),
        ds=({0: B}, {0: B}, {0: B}, {0: B}, None), dynamic="batch in [1,16]; export 2, dyn 4",
        out_ops=OpsInt.OUT,
    )
    cases["mlp_f16"] = dict(
        build=MlpF16, dtype=torch.float16, args=lambda: (f32(3, 16).half(),),
        dyn=lambda: (f32(6, 16).half(),), ds=({0: B},), dynamic="batch in [1,16]; export 3, dyn 6",
        out_ops=["fc2(silu(layernorm(gelu(fc1 x))))", "softmax"],
        notes="model.half(); f16 inputs and outputs",
    )
    cases["cnn_bf16"] = dict(
        build=lambda: randomize_bn(ResNetSmall()), dtype=torch.bfloat16,
        args=lambda: (f32(2, 3, 32, 32).to(torch.bfloat16),),
        dyn=lambda: (f32(1, 3, 32, 32).to(torch.bfloat16),), ds=({0: B},),
        dynamic="batch in [1,16]; export 2, dyn 1",
        notes="resnet_small converted with .to(torch.bfloat16); input and output bf16, SAVED AS "
              "float32 in the .npy files (exact: every bf16 value is an f32 value)",
    )
    cases["mixed_cast"] = dict(
        build=MixedCast, args=lambda: (f32(2, 5, 16),), dyn=lambda: (f32(3, 9, 16),),
        ds=({0: B, 1: Dim("s", min=2, max=64)},),
        dynamic="[batch,seq,16]; batch in [1,16], seq in [2,64]; export 2x5, dyn 3x9",
        out_ops=["f16 matmul + bf16 matmul, back to f32", "arange(seq) int64 * 2"],
        notes="f32 in; inside: x.half() @ w.half() and x.bf16() @ w.bf16(), each cast back to f32",
    )
    cases["refuse_custom_op"] = dict(
        build=RefuseCustom, args=lambda: (f32(2, 4),), refuse=True,
        notes="REFUSE: node target torch.ops.mylib.twice.default (a torch.library.custom_op); the "
              "interpreter must fail with an error naming mylib::twice",
    )
    cases["refuse_cond"] = dict(
        build=RefuseCond, args=lambda: (f32(2, 4),), refuse=True,
        notes="REFUSE: torch.ops.higher_order.cond with subgraph arguments (as_graph); must be "
              "refused naming the higher-order op",
    )
    cases["refuse_while"] = dict(
        build=RefuseWhile, args=lambda: (f32(2, 4),), refuse=True,
        notes="REFUSE: torch.ops.higher_order.while_loop with subgraphs; must be refused naming it",
    )
    return cases


def randomize_bn1d(m):
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm1d):
            with torch.no_grad():
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    return m


def low_precision_rtol(model, args, dtype):
    """Max relative deviation of the low-precision run from the same model in f32, times 2."""
    ref = model.float()
    fargs = tuple(a.float() if a.is_floating_point() else a for a in args)
    with torch.no_grad():
        exp, _ = tree_flatten(ref(*fargs))
    model.to(dtype)
    with torch.no_grad():
        got, _ = tree_flatten(model(*args))
    worst = 0.0
    for g, e in zip(got, exp):
        g, e = g.float(), e.float()
        worst = max(worst, ((g - e).abs().max() / e.abs().max().clamp_min(1e-6)).item())
    return worst


def strip_meta(ep, keys):
    """Drop node.meta entries that the interpreter never reads, to keep the fixtures small.

    stack_trace (source paths of this machine: half of models/*.json), from_node (decomposition
    provenance chains) and torch_fn go everywhere; nn_module_stack is kept in program.pt2 only.
    """
    mods = [ep.graph_module] + [m for _, m in ep.graph_module.named_modules()]
    for gm in mods:
        g = getattr(gm, "graph", None)
        if g is None:
            continue
        for node in g.nodes:
            for k in keys:
                node.meta.pop(k, None)
    return ep


META_TRAINING = ("stack_trace", "from_node", "torch_fn")
META_CORE = META_TRAINING + ("nn_module_stack",)


def mixed_cast_deviation(model, args):
    """mixed_cast against the same computation without the f16/bf16 casts."""
    with torch.no_grad():
        x = args[0]
        s = x.shape[1]
        x = x + model.pos(torch.arange(s))
        ref = (x @ model.w) * 2
        got = model(*args)[0]
    return ((got - ref).abs().max() / ref.abs().max()).item()


def write_case(root, name, spec, report):
    d = os.path.join(root, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    torch.manual_seed(0)
    model = spec["build"]().eval()
    dtype = spec.get("dtype")
    torch.manual_seed(1)
    args = spec["args"]()
    measured = None
    if dtype is not None:
        measured = low_precision_rtol(model, args, dtype)
        model.to(dtype)
    ds = spec.get("ds")
    notes = [spec["notes"]] if spec.get("notes") else []
    try:
        ep = torch.export.export(model, args, dynamic_shapes=ds)
    except Exception as e:
        if spec.get("ds_fallback") is None:
            raise
        notes.append(f"dynamic_shapes {spec['dynamic']} did not export ({type(e).__name__}: "
                     f"{str(e).splitlines()[0][:200]}); exported with batch-only dynamic dims")
        ds = spec["ds_fallback"]
        spec["dynamic"] = "batch in [1,16] only (H/W static)"
        ep = torch.export.export(model, args, dynamic_shapes=ds)
    torch.export.save(strip_meta(ep, META_TRAINING), os.path.join(d, "program.pt2"))
    info = {"inputs": [], "outputs": [], "dynamic": spec.get("dynamic", "static"), "notes": ""}
    sig = ep.graph_signature
    user_inputs = [s.arg.name for s in sig.input_specs if s.kind.name == "USER_INPUT"]
    ops_t, _, _, _ = analyse(os.path.join(d, "program.pt2"))
    info["ops_training"] = dict(sorted(ops_t.items()))
    if spec.get("refuse"):
        info["inputs"] = [{"name": n, **tensor_meta(a)} for n, a in zip(user_inputs, args)]
        info["notes"] = "; ".join(notes)
        json.dump(info, open(os.path.join(d, "case.json"), "w"), indent=1)
        report[name] = "refusal program written"
        return

    core = ep.run_decompositions()
    torch.export.save(strip_meta(core, META_CORE), os.path.join(d, "program_core.pt2"))
    ops_c, _, _, _ = analyse(os.path.join(d, "program_core.pt2"))
    info["ops_core"] = dict(sorted(ops_c.items()))

    if name == "mixed_cast":
        measured = mixed_cast_deviation(model, args)
    tol = 1e-4 if measured is None else float(f"{max(measured * 2, 1e-3):.2g}")
    if name == "ops_int":
        tol = 1e-3  # f16/bf16 outputs are casts or one rounding of an exact sum
    info["rtol"] = tol
    if measured is not None:
        notes.append(f"measured max|low-precision - f32 reference| / max|f32 reference| = "
                     f"{measured:.3g} over all outputs; rtol = 2x that (min 1e-3), meant as "
                     f"|got - want| <= rtol * max|want| per output")

    def run_and_save(inputs, sub):
        sd = os.path.join(d, sub) if sub else d
        os.makedirs(sd, exist_ok=True)
        with torch.no_grad():
            eager, _ = tree_flatten(model(*inputs))
            for prog, label in ((ep, "training"), (core, "core")):
                got, _ = tree_flatten(prog.module()(*inputs))
                assert len(got) == len(eager), (name, label)
                for i, (g, e) in enumerate(zip(got, eager)):
                    lp = e.dtype in (torch.float16, torch.bfloat16)
                    assert close(g, e, 1e-2 if lp else 1e-4, 1e-2 if lp else 1e-5), (
                        f"{name} {label} output {i} differs from eager: "
                        f"{(g.float() - e.float()).abs().max()}")
        for i, a in enumerate(inputs):
            np.save(os.path.join(sd, f"in_{i}.npy"), to_np(a))
        for i, o in enumerate(eager):
            np.save(os.path.join(sd, f"out_{i}.npy"), to_np(o))
        return eager

    eager = run_and_save(args, None)
    info["inputs"] = [{"name": n, **tensor_meta(a)} for n, a in zip(user_inputs, args)]
    out_ops = spec.get("out_ops")
    for i, o in enumerate(eager):
        m = tensor_meta(o)
        if out_ops is not None:
            m = {"op": out_ops[i], **m}
        info["outputs"].append(m)
    if out_ops is not None:
        assert len(out_ops) == len(eager), (name, len(out_ops), len(eager))
    if spec.get("dyn") is not None and ds is not None:
        torch.manual_seed(2)
        dargs = spec["dyn"]()
        deager = run_and_save(dargs, "dyn")
        info["dyn"] = {
            "inputs": [tensor_meta(a) for a in dargs], "outputs": [tensor_meta(o) for o in deager]}
    info["notes"] = "; ".join(notes + spec.get("extra_notes", []))
    json.dump(info, open(os.path.join(d, "case.json"), "w"), indent=1)
    report[name] = f"ok ({len(eager)} outputs)"


def write_ops_md(root):
    ops_cases = defaultdict(lambda: [0, set()])
    kinds = {}
    exprs = defaultdict(set)
    spec_kinds = defaultdict(set)
    for name in sorted(os.listdir(root)):
        for prog in ("program.pt2", "program_core.pt2"):
            p = os.path.join(root, name, prog)
            if not os.path.exists(p):
                continue
            ops, k, ex, m = analyse(p)
            sig = m["graph_module"]["signature"]
            for side in ("input_specs", "output_specs"):
                for sp in sig[side]:
                    spec_kinds[f"{side}.{next(iter(sp))}"].add(name)
            for op, c in ops.items():
                ops_cases[op][0] += c
                ops_cases[op][1].add(name)
            for kk, v in k.items():
                kinds.setdefault(kk, (name, v))
            for e in ex:
                exprs[e].add(name)
    lines = [
        "# Node targets, argument kinds and size expressions in tests/fixtures/graph",
        "",
        "Generated by `scripts/graph_fixtures.py` from every `program.pt2` and `program_core.pt2`",
        "(models/*.json, graph_module.graph, nested subgraphs included).",
        "",
        "## Node targets",
        "",
        "| target | count | cases |",
        "|---|---|---|",
    ]
    for op in sorted(ops_cases):
        c, cs = ops_cases[op]
        lines.append(f"| `{op}` | {c} | {', '.join(sorted(cs))} |")
    lines += ["", "## Argument kinds (the key of each node input `arg`)", ""]
    for kk in sorted(kinds):
        name, v = kinds[kk]
        snippet = json.dumps(v["arg"])
        if len(snippet) > 400:
            snippet = snippet[:400] + " ..."
        lines += [f"### `{kk}`", "", f"case `{name}`, target `{v['target']}`, input `{v['name']}`:", "",
                  "```json", snippet, "```", ""]
    lines += ["## Graph signature input / output spec kinds", ""]
    for kk in sorted(spec_kinds):
        lines.append(f"- `{kk}`: {', '.join(sorted(spec_kinds[kk]))}")
    lines += ["", "## `as_expr` expr_str forms (tensor_values sizes, sym_int_values)", ""]
    heads = set()
    for e in exprs:
        heads.update(re.findall(r"([A-Z][A-Za-z]*)\(", e))
    lines += [f"Sympy heads used: {', '.join(sorted(heads))}.", ""]
    for e in sorted(exprs):
        lines.append(f"- `{e}` ({', '.join(sorted(exprs[e]))})")
    open(os.path.join(root, "OPS.md"), "w").write("\n".join(lines) + "\n")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/graph"
    only = set(sys.argv[2:])
    os.makedirs(root, exist_ok=True)
    report = {}
    for name, spec in case_defs().items():
        if only and name not in only:
            continue
        try:
            write_case(root, name, spec, report)
        except Exception as e:
            traceback.print_exc()
            report[name] = f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        print(name, report[name], flush=True)
    write_ops_md(root)
    rp = os.path.join(root, "report.json")
    old = json.load(open(rp)) if os.path.exists(rp) else {}
    old.update(report)
    json.dump(old, open(rp, "w"), indent=1)


if __name__ == "__main__":
    main()
