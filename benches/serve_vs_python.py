#!/usr/bin/env python3
"""Serving benchmark: `torchless serve` next to the Python bridges teams write, on loopback.

Embeddings (TEI `POST /embed`, one sentence per request) from three servers, started one at a
time on 127.0.0.1 with the same sentence-transformers folder and the same thread budget:

  plain     FastAPI + uvicorn + sentence-transformers, a sync endpoint calling `model.encode`
            once per request (FastAPI runs it on its thread pool, as such bridges are written)
  batching  the same with a hand-written batching queue: an asyncio queue collecting requests
            up to --py-max-batch (32) or --py-max-wait-ms (5 ms), one `encode` per batch on
            one worker thread
  torchless `torchless serve` (dynamic batching, --max-batch-size 32, --max-wait-ms 5)

Before timing, the three must return the same embeddings (max abs difference <= 1e-3). Then,
per server and concurrency, a fixed number of requests (the same texts, mixed lengths) is sent
by that many concurrent clients (aiohttp, keep-alive); throughput (req/s) and p50/p99 latency
are printed as a Markdown table, followed by the issue's targets at concurrency 32 and 1.

Generation (`--gen`): tokens/s of S concurrent streamed `POST /v1/completions` (greedy, token-id
prompts) against the same S run one after the other, on one `torchless serve` of a
GPT-2-small-shaped folder with random weights (written by this script with transformers if
missing; no tokenizer.json, so prompts are token ids and tokens are counted from `token_ids`).

Missing model folders are created with random weights: a MiniLM-L6-shaped
BertModel (hidden 384, 6 layers, 12 heads, MLP 1536, 512 positions) with the WordPiece
tokenizer of tests/fixtures/bert (so its vocabulary is that tokenizer's 1200 tokens, not
MiniLM's 30522) as a sentence-transformers folder (Transformer + mean Pooling + Normalize),
and GPT2LMHeadModel(GPT2Config()) (124M).

Dev-only (needs torch, transformers, sentence-transformers, fastapi, uvicorn, aiohttp):
    cargo build --release -p torchless --bin torchless
    python benches/serve_vs_python.py [--model DIR] [--requests 400] [--concurrency 1,8,32,128]
        [--torchless PATH] [--threads N] [--repeat 2] [--gen] [--markdown FILE]
"""
import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BERT_FIXTURE = ROOT / "tests" / "fixtures" / "bert" / "tiny-st"
MINILM = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
              max_position_embeddings=512)
# Longest test text is ~45 tokens with the fixture tokenizer; the folder truncates at 64 like
# the fixture tokenizer's model_max_length (real MiniLM: 256), so nothing is cut.
MAX_SEQ_LENGTH = 64
SERVERS = ("plain", "batching", "torchless")
WORDS = ("the quick brown fox jumps over lazy dog while old lighthouse keeper climbs narrow "
         "spiral staircase counting every worn stone step listening to restless waves crashing "
         "against black rocks far below and quietly wondering whether supply ship from mainland "
         "would finally arrive before bitter winter storms closed little harbour for another "
         "long dark season of waiting mending nets reading letters by candlelight hello world "
         "music weather coffee morning train city river mountain garden").split()


# ---------------------------------------------------------------- model folders
def make_minilm(out: Path) -> None:
    """A MiniLM-L6-shaped sentence-transformers folder with random weights (seeded)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    vocab = len(json.loads((BERT_FIXTURE / "tokenizer.json").read_text())["model"]["vocab"])
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=vocab, pad_token_id=0, **MINILM)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        bert.save_pretrained(str(base))
        for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
            shutil.copy(BERT_FIXTURE / f, base / f)
        transformer = Transformer(str(base), max_seq_length=MAX_SEQ_LENGTH)
        st = SentenceTransformer(modules=[transformer, Pooling(MINILM["hidden_size"], pooling_mode="mean"),
                                          Normalize()], device="cpu").eval()
        st.save(str(out))
    # As scripts/make_fixtures.py: max_seq_length also in sentence_bert_config.json (the classic key).
    sb_path = out / "sentence_bert_config.json"
    sb_path.write_text(json.dumps({"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False,
                                   **json.loads(sb_path.read_text())}, indent=4) + "\n")
    print(f"wrote {out}: random-weight MiniLM-L6-shaped encoder, vocabulary {vocab}", file=sys.stderr)


def make_gpt2(out: Path) -> None:
    """GPT2LMHeadModel(GPT2Config()) with random weights (seeded), f32 safetensors, no tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).eval().save_pretrained(str(out))
    print(f"wrote {out}: random-weight GPT-2-small (124M)", file=sys.stderr)


# ---------------------------------------------------------------- the Python bridges
def run_python_server(kind: str, model_dir: str, port: int, threads: int, max_batch: int,
                      max_wait_ms: float) -> None:
    """Runs one Python bridge in this process until SIGTERM."""
    import concurrent.futures
    from contextlib import asynccontextmanager

    import torch
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    model.encode(["warm up"])
    app = FastAPI()

    class EmbedRequest(BaseModel):
        inputs: str | list[str]

    @app.get("/health")
    def health():
        return {"ok": True}

    if kind == "plain":
        @app.post("/embed")
        def embed(req: EmbedRequest):
            texts = [req.inputs] if isinstance(req.inputs, str) else req.inputs
            return model.encode(texts).tolist()
    else:
        queue: asyncio.Queue = asyncio.Queue()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

        async def batcher():
            loop = asyncio.get_running_loop()
            while True:
                batch = [await queue.get()]
                deadline = loop.time() + max_wait_ms / 1e3
                while len(batch) < max_batch:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(queue.get(), left))
                    except asyncio.TimeoutError:
                        break
                texts = [t for t, _ in batch]
                try:
                    embs = await loop.run_in_executor(pool, model.encode, texts)
                    for (_, fut), e in zip(batch, embs):
                        fut.set_result(e.tolist())
                except Exception as e:  # noqa: BLE001 - handed to every waiting request
                    for _, fut in batch:
                        fut.set_exception(e)

        tasks = []

        @asynccontextmanager
        async def lifespan(_app):
            tasks.append(asyncio.create_task(batcher()))
            yield
            tasks[0].cancel()

        app.router.lifespan_context = lifespan

        @app.post("/embed")
        async def embed(req: EmbedRequest):
            texts = [req.inputs] if isinstance(req.inputs, str) else req.inputs
            loop = asyncio.get_running_loop()
            futs = [loop.create_future() for _ in texts]
            for t, f in zip(texts, futs):
                await queue.put((t, f))
            return list(await asyncio.gather(*futs))

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# ---------------------------------------------------------------- process handling
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process on loopback; stopped with SIGTERM, then SIGKILL after 10 s."""

    def __init__(self, kind: str, args, model_dir: str, batch: int | None = None):
        self.kind = kind
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
                   RAYON_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
        self.port = free_port()
        if kind == "torchless":
            cmd = [args.torchless, "serve", "--model", f"m={model_dir}", "--host", "127.0.0.1",
                   "--port", str(self.port), "--max-batch-size", str(batch or args.max_batch),
                   "--max-wait-ms", str(args.max_wait_ms), "--max-queue", "4096"]
            self.ready = "/ready"
        else:
            cmd = [sys.executable, __file__, "--serve-python", kind, "--model", model_dir,
                   "--port", str(self.port), "--threads", str(args.threads),
                   "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
            self.ready = "/health"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout=180.0):
        import urllib.request
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + self.ready, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.kind} not ready after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()

    def __enter__(self):
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------- clients
def texts_for(n: int) -> list[str]:
    """`n` deterministic sentences of 3 to 28 words (mixed lengths, the same for every server)."""
    out, x = [], 12345
    for i in range(n):
        x = (x * 1103515245 + 12345) % 2**31
        k = 3 + (x >> 8) % 26 if i % 4 else 3 + (x >> 8) % 10  # a quarter of them short
        words = []
        for _ in range(k):
            x = (x * 1103515245 + 12345) % 2**31
            words.append(WORDS[(x >> 8) % len(WORDS)])
        out.append(" ".join(words).capitalize() + ".")
    return out


async def embed_one(session, url, text):
    async with session.post(url + "/embed", json={"inputs": text}) as r:
        body = await r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}/embed: {r.status} {body[:300]!r}")
        return json.loads(body)


async def load(url: str, texts: list[str], concurrency: int, warmup: int):
    """Sends every text once with `concurrency` clients; returns (wall s, latencies s)."""
    import aiohttp

    conn = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as s:
        await asyncio.gather(*(embed_one(s, url, t) for t in texts[:warmup]))
        lat, nxt = [], iter(range(len(texts)))

        async def client():
            for i in nxt:
                t = time.perf_counter()
                await embed_one(s, url, texts[i])
                lat.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return time.perf_counter() - t0, lat


async def fetch_embeddings(url: str, texts: list[str]):
    import aiohttp
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
        return [(await embed_one(s, url, t))[0] for t in texts]


def batch_metrics(url: str) -> dict:
    """torchless `/metrics`: {"batch_size_sum", "batch_size_count", "batch_seconds_sum", ...}."""
    import urllib.request
    out = {}
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            for name in ("torchless_batch_size", "torchless_batch_seconds"):
                for part in ("_sum", "_count"):
                    if line.startswith(name + part):
                        key = name[len("torchless_"):] + part
                        out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


# ---------------------------------------------------------------- generation
async def completion_stream(session, url, prompt, new):
    body = {"model": "m", "prompt": prompt, "max_tokens": new, "temperature": 0, "stream": True}
    n = 0
    async with session.post(url + "/v1/completions", json=body) as r:
        if r.status != 200:
            raise RuntimeError(f"/v1/completions: {r.status} {(await r.read())[:300]!r}")
        async for line in r.content:
            line = line.strip()
            if not line.startswith(b"data:") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if "error" in chunk:
                raise RuntimeError(f"stream error: {chunk['error']}")
            for c in chunk.get("choices", []):
                n += len(c.get("token_ids") or [])
    return n


async def generation(url, streams, new):
    import aiohttp
    prompts = [[(s * 7919 + j * 104729 + 13) % 50257 for j in range(8 + (s * 7) % 31)]
               for s in range(streams)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as s:
        await completion_stream(s, url, prompts[0], 4)  # warm up
        t = time.perf_counter()
        seq = [await completion_stream(s, url, p, new) for p in prompts]
        seq_s = time.perf_counter() - t
        t = time.perf_counter()
        con = await asyncio.gather(*(completion_stream(s, url, p, new) for p in prompts))
        con_s = time.perf_counter() - t
    return sum(seq), seq_s, sum(con), con_s


# ---------------------------------------------------------------- main
def machine() -> str:
    model = "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="/tmp/minilm-random",
                    help="sentence-transformers folder (created with random weights if missing)")
    ap.add_argument("--gen-model", default="/tmp/gpt2-small-random",
                    help="GPT-2 folder for --gen (created with random weights if missing)")
    ap.add_argument("--torchless", default=None,
                    help="torchless binary (default: $CARGO_TARGET_DIR or target/, release/torchless)")
    ap.add_argument("--requests", type=int, default=400, help="timed requests per configuration")
    ap.add_argument("--concurrency", default="1,8,32,128", help="comma-separated client counts")
    ap.add_argument("--servers", default=",".join(SERVERS), help="subset of plain,batching,torchless")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch.set_num_threads / RAYON_NUM_THREADS of every server (default: nproc)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of every configuration")
    ap.add_argument("--max-batch", type=int, default=32, help="batch size of the batching servers")
    ap.add_argument("--max-wait-ms", type=int, default=5, help="batch wait (ms) of the batching servers")
    ap.add_argument("--gen", action="store_true", help="also run the generation benchmark")
    ap.add_argument("--gen-streams", type=int, default=16)
    ap.add_argument("--gen-new", type=int, default=32, help="new tokens per stream")
    ap.add_argument("--markdown", default=None, help="also write the tables to this file")
    ap.add_argument("--serve-python", choices=("plain", "batching"), help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.serve_python:
        return run_python_server(args.serve_python, args.model, args.port, args.threads,
                                 args.max_batch, args.max_wait_ms)

    if args.torchless is None:
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        args.torchless = str(target / "release" / "torchless")
    if not Path(args.torchless).is_file():
        sys.exit(f"no torchless binary at {args.torchless}: cargo build --release -p torchless "
                 "--bin torchless, or pass --torchless")
    if not Path(args.model).exists():
        make_minilm(Path(args.model))
    servers = [s for s in args.servers.split(",") if s]
    bad = [s for s in servers if s not in SERVERS]
    if bad:
        sys.exit(f"unknown server(s) {bad}: use {','.join(SERVERS)}")
    concs = [int(c) for c in args.concurrency.split(",")]
    texts = texts_for(args.requests)
    check = texts_for(16) + ["Hello world", "a"]
    lines = [f"machine: {machine()}; threads per server: {args.threads}; "
             f"{args.requests} requests per row; model {args.model}", ""]
    print(lines[0], flush=True)

    # ---- same embeddings from every server, then timing
    results = {}  # (server, conc) -> [(rps, p50 ms, p99 ms)]
    ref = None
    for run in range(args.repeat):
        for kind in servers:
            with Server(kind, args, args.model) as srv:
                embs = asyncio.run(fetch_embeddings(srv.url, check))
                if ref is None:
                    ref = (kind, embs)
                else:
                    diff = max(abs(a - b) for ea, eb in zip(ref[1], embs) for a, b in zip(ea, eb))
                    print(f"max |{kind} - {ref[0]}| over {len(check)} texts: {diff:.2e}", flush=True)
                    if diff > 1e-3:
                        sys.exit(f"{kind} and {ref[0]} differ by {diff} > 1e-3")
                for c in concs:
                    warmup = min(2 * c, 64)
                    asyncio.run(load(srv.url, texts[:warmup], c, warmup=0))
                    m0 = batch_metrics(srv.url) if kind == "torchless" else None
                    wall, lat = asyncio.run(load(srv.url, texts, c, warmup=0))
                    row = (len(texts) / wall, pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3)
                    results.setdefault((kind, c), []).append(row)
                    extra = ""
                    if m0 is not None:
                        m1 = batch_metrics(srv.url)
                        n = m1["batch_size_count"] - m0["batch_size_count"]
                        fwd = m1["batch_seconds_sum"] - m0["batch_seconds_sum"]
                        if n:
                            extra = (f"  batches {n:.0f}, mean size {(m1['batch_size_sum'] - m0['batch_size_sum']) / n:.1f}"
                                     f", forward {fwd / n * 1e3:.1f} ms/batch, {fwd / wall:.0%} of wall")
                    print(f"run {run + 1} {kind:9} c={c:<4} {row[0]:8.1f} req/s  p50 {row[1]:8.1f} ms"
                          f"  p99 {row[2]:8.1f} ms  (load {os.getloadavg()[0]:.2f}){extra}", flush=True)

    table = ["| server | concurrency | req/s | p50 ms | p99 ms | req/s vs plain |",
             "|---|---|---|---|---|---|"]
    for kind in servers:
        for c in concs:
            for i, (rps, p50, p99) in enumerate(results[(kind, c)]):
                base = results.get(("plain", c))
                vs = f"{rps / base[i][0]:.2f}x" if base else "-"
                table.append(f"| {kind}{'' if i == 0 else f' (run {i + 1})'} | {c} | {rps:.1f} | "
                             f"{p50:.1f} | {p99:.1f} | {vs} |")
    lines += table + [""]

    def best(kind, c, i):
        return results[(kind, c)][i]

    if all(k in servers for k in SERVERS):
        for i in range(args.repeat):
            if 32 in concs:
                t, p, b = best("torchless", 32, i), best("plain", 32, i), best("batching", 32, i)
                lines.append(f"- run {i + 1}, concurrency 32: torchless {t[0] / p[0]:.2f}x the plain "
                             f"bridge's req/s (target >= 3x: {'met' if t[0] >= 3 * p[0] else 'missed'}), "
                             f"{t[0] / b[0]:.2f}x the batching bridge's (target >= 1.5x: "
                             f"{'met' if t[0] >= 1.5 * b[0] else 'missed'}), p99 {t[2]:.1f} ms vs "
                             f"{b[2]:.1f} ms (lower: {'met' if t[2] < b[2] else 'missed'})")
            if 1 in concs:
                t, p = best("torchless", 1, i), best("plain", 1, i)
                lines.append(f"- run {i + 1}, concurrency 1: p50 {t[1]:.1f} ms vs plain {p[1]:.1f} ms "
                             f"(target below: {'met' if t[1] < p[1] else 'missed'})")
        lines.append("")

    if args.gen:
        if not Path(args.gen_model).exists():
            make_gpt2(Path(args.gen_model))
        gl = ["| streams | mode | new tokens | seconds | tok/s |", "|---|---|---|---|---|"]
        for run in range(args.repeat):
            with Server("torchless", args, args.gen_model, batch=args.gen_streams) as srv:
                sn, ss, cn, cs = asyncio.run(generation(srv.url, args.gen_streams, args.gen_new))
            r = "" if run == 0 else f" (run {run + 1})"
            gl.append(f"| {args.gen_streams} | sequential{r} | {sn} | {ss:.2f} | {sn / ss:.1f} |")
            gl.append(f"| {args.gen_streams} | concurrent{r} | {cn} | {cs:.2f} | {cn / cs:.1f} "
                      f"({(cn / cs) / (sn / ss):.2f}x) |")
            print(gl[-2] + "\n" + gl[-1], flush=True)
        lines += gl + [""]

    text = "\n".join(lines)
    print("\n" + text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
