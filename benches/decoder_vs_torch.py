#!/usr/bin/env python3
"""Decoder generation speed on the CPU at batch 1, torchless next to PyTorch eager, in one run.

Builds two Hugging Face folders with random weights (cached under --work): a GPT-2-small-sized
`GPT2LMHeadModel` (124M parameters) and a ~1.1B Llama-shaped `LlamaForCausalLM` (TinyLlama's
shape: 22 layers, 2048 wide, 32 query / 4 key-value heads, 5632 MLP, 32000 vocabulary), saved
in f32 and run in f32 and in bf16 on both sides.
Times `transformers` `generate()` (greedy, `use_cache=True`, `torch.inference_mode`, eager)
with `torch.set_num_threads(N)`, then runs `cargo bench --bench decoder` (the public
`TextGenerator::generate`) on the same folders with `RAYON_NUM_THREADS=N`:

- prefill: a 32-token (`--prompt`) prompt through the model and the first token chosen
  (PyTorch: `generate(max_new_tokens=1)`);
- decode tokens/s: the remaining new tokens (PyTorch: `(new - 1) / (t(new) - t(1))`).

`--dtypes` may also name `int8`: torchless `--quantize int8` (f32 model, int8 block weights)
next to transformers eager f32 and next to `torch.ao.quantization.quantize_dynamic(...,
{nn.Linear}, dtype=torch.qint8)` (int8 weights, dynamically quantized activations, fbgemm) in
two forms: the blocks only (as torchless: the head stays f32; GPT-2's `Conv1D`s turned into the
equal `nn.Linear`s first, since the dynamic quantizer only takes `nn.Linear`), and the blocks plus
the output head (what `quantize_dynamic(model, {nn.Linear})` gives a model whose head is an
`nn.Linear`).

Prints a markdown table of medians and ratios for benches/RESULTS.md. Dev-only (needs torch and
transformers):

    python benches/decoder_vs_torch.py [--threads N] [--new 32] [--work /tmp/torchless-bench]
    python benches/decoder_vs_torch.py --models gpt2-small --dtypes f32,int8
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = 32


def build(kind, folder):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if kind == "gpt2-small":
        model = GPT2LMHeadModel(GPT2Config())
    else:
        cfg = LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                          num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                          max_position_embeddings=2048, tie_word_embeddings=False)
        model = LlamaForCausalLM(cfg)
    model = model.eval()
    if not os.path.exists(os.path.join(folder, "config.json")):
        model.save_pretrained(folder)
    return model


def to_linear(model):
    """Replaces every GPT-2 `Conv1D` ([in, out] weight) by the equal `nn.Linear`."""
    import torch
    from transformers.pytorch_utils import Conv1D

    for parent in list(model.modules()):
        for name, m in list(parent.named_children()):
            if isinstance(m, Conv1D):
                lin = torch.nn.Linear(m.weight.shape[0], m.weight.shape[1])
                lin.weight.data = m.weight.data.t().contiguous()
                lin.bias.data = m.bias.data.clone()
                setattr(parent, name, lin)
    return model


def dynamic_int8(model, head):
    """A copy of `model` with PyTorch's dynamic int8 quantization of its linear layers: those
    of the blocks, and with `head` the output head too."""
    import copy

    import torch

    q = to_linear(copy.deepcopy(model).float())
    blocks = q.transformer.h if hasattr(q, "transformer") else q.model.layers
    torch.ao.quantization.quantize_dynamic(blocks, {torch.nn.Linear}, dtype=torch.qint8,
                                           inplace=True)
    if head:
        # The tied head is untied here: the embedding gather keeps the f32 table.
        q.lm_head = torch.nn.Linear(q.lm_head.in_features, q.lm_head.out_features, bias=False)
        q.lm_head.weight.data = model.lm_head.weight.data.float().clone()
        q.config.tie_word_embeddings = False
        q.lm_head = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(q.lm_head), {torch.nn.Linear}, dtype=torch.qint8)[0]
    return q


def torch_times(model, new, runs):
    import torch

    vocab = model.config.vocab_size
    ids = torch.tensor([[(i * 7919 + 13) % vocab for i in range(PROMPT)]])
    mask = torch.ones_like(ids)

    def gen(n):
        t = time.perf_counter()
        model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                       do_sample=False, use_cache=True, pad_token_id=0)
        return time.perf_counter() - t

    with torch.inference_mode():
        gen(4)
        t1 = statistics.median(gen(1) for _ in range(runs))
        tn = statistics.median(gen(new) for _ in range(runs))
    return {"prefill_ms": t1 * 1e3, "decode_tok_s": (new - 1) / (tn - t1)}


def main():
    global PROMPT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=PROMPT,
                    help="prompt tokens (prefill length; 512 for the long-prompt rows)")
    ap.add_argument("--work", default="/tmp/torchless-bench")
    ap.add_argument("--models", default="gpt2-small,llama-1b")
    ap.add_argument("--dtypes", default="f32,bf16")
    args = ap.parse_args()
    PROMPT = args.prompt
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    int8_rows, int8_ours = [], {}
    for kind in args.models.split(","):
        folder = os.path.join(args.work, kind)
        os.makedirs(folder, exist_ok=True)
        runs = 5 if kind == "gpt2-small" else 2
        model = build(kind, folder)
        f32_theirs = None
        for dtype in args.dtypes.split(","):
            if dtype == "bf16":
                model = model.to(torch.bfloat16)
            flags = ["--dtype", dtype]
            if dtype == "int8":
                flags = ["--dtype", "f32", "--quantize", "int8"]
                base = model.float()
                f32_theirs = f32_theirs or torch_times(base, args.new, runs)
                for label, head in (("blocks", False), ("blocks+head", True)):
                    t = torch_times(dynamic_int8(base, head), args.new, runs)
                    int8_rows.append((kind, label, t))
                    print(kind, "quantize_dynamic", label, json.dumps(t), file=sys.stderr,
                          flush=True)
                theirs = f32_theirs
            else:
                theirs = torch_times(model, args.new, runs)
                if dtype == "f32":
                    f32_theirs = theirs
            env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
            out = subprocess.run(
                ["cargo", "bench", "-q", "-p", "torchless-benches", "--bench", "decoder", "--",
                 folder, "--prompt", str(PROMPT), "--new", str(args.new), "--runs", str(runs),
                 *flags],
                cwd=ROOT, env=env, check=True, capture_output=True, text=True)
            ours = json.loads(out.stdout.strip().splitlines()[-1])
            label = f"{kind} {dtype}" if dtype != "int8" else f"{kind} int8 (vs PyTorch f32)"
            rows.append((label, ours, theirs))
            if dtype == "int8":
                int8_ours[kind] = ours
            print(kind, dtype, json.dumps(ours), json.dumps(theirs), file=sys.stderr, flush=True)
        del model

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"threads: {args.threads}; torch {torch.__version__}; prompt {PROMPT} tokens, "
          f"{args.new} new tokens, batch 1; both sides run the dtype shown (weights saved in f32, "
          f"cast at load)\n")
    print("| model | torchless prefill ms | PyTorch prefill ms | prefill speed-up | "
          "torchless decode tok/s | PyTorch decode tok/s | decode speed-up | "
          "RSS MiB before → after a 4x longer generation |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, o, t in rows:
        print(f"| {kind} | {o['prefill_ms']:.1f} | {t['prefill_ms']:.1f} | "
              f"{t['prefill_ms'] / o['prefill_ms']:.2f}x | {o['decode_tok_s']:.1f} | "
              f"{t['decode_tok_s']:.1f} | {o['decode_tok_s'] / t['decode_tok_s']:.2f}x | "
              f"{o['rss_mib_before']:.0f} → {o['rss_mib_after_long_generation']:.0f} "
              f"({o['long_generation_tokens']} tokens) |")
    if int8_rows:
        print("\n| model | torchless --quantize int8 decode tok/s | PyTorch quantize_dynamic "
              "int8 | decode tok/s | torchless speed-up |")
        print("|---|---|---|---|---|")
        for kind, label, t in int8_rows:
            o = int8_ours[kind]
            print(f"| {kind} | {o['decode_tok_s']:.1f} | {label} | {t['decode_tok_s']:.1f} | "
                  f"{o['decode_tok_s'] / t['decode_tok_s']:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
