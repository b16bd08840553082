//! `torchless serve` as a client sees it: the real binary on a free loopback port, the committed
//! fixtures, and a small std-only HTTP/1.1 client (`Connection: close`, chunked bodies decoded).
//! Values are checked against the recorded PyTorch outputs and the library's own calls.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::common::{fixture, floats, ints, rel_err, s};

/// A running server, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// The gRPC address, with `--grpc-port`.
    pub grpc: Option<SocketAddr>,
}

impl Server {
    /// `torchless serve --port 0 --device cpu ARGS`, once `/ready` answers 200.
    pub fn start(args: &[&str]) -> Server {
        Self::start_env(args, &[])
    }

    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_torchless"));
        cmd.args(["serve", "--port", "0", "--device", "cpu"])
            .args(args)
            .env_remove("TORCHLESS_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run torchless serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(a.to_string());
                }
                if let Some(a) = line.strip_prefix("listening on grpc://") {
                    let _ = tx.send(a.to_string());
                }
            }
        });
        let mut recv = || match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse::<SocketAddr>().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("the server printed no `listening on` line");
            }
        };
        let addr = recv();
        // Printed right after the HTTP address.
        let grpc = args.contains(&"--grpc-port").then(&mut recv);
        let server = Server { child, addr, grpc };
        let deadline = Instant::now() + Duration::from_secs(60);
        let key = env
            .iter()
            .find(|(k, _)| *k == "TORCHLESS_API_KEY")
            .map(|(_, v)| *v)
            .or_else(|| {
                args.iter()
                    .position(|a| *a == "--api-key")
                    .map(|i| args[i + 1])
            });
        let auth = key.map(|k| format!("Bearer {k}"));
        loop {
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("Authorization", a)])
                .unwrap_or_default();
            if server.call("GET", "/ready", &headers, None).status == 200 {
                return server;
            }
            assert!(Instant::now() < deadline, "the server never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        request(self.addr, method, path, headers, body)
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, &[], Some(body.to_string().as_bytes()))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.call("GET", path, &[], None)
    }

    /// A metric's value (first line starting with `name`).
    pub fn metric(&self, name: &str) -> f64 {
        let m = self.get("/metrics");
        assert_eq!(m.status, 200);
        m.text()
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no metric {name} in\n{}", m.text()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Reply {
    pub status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error body's message, after checking its shape.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        let v = self.json();
        assert_eq!(v["error"]["code"], status);
        assert!(v["error"]["type"].is_string());
        v["error"]["message"].as_str().unwrap().to_string()
    }

    /// The `data:` payloads of a server-sent-events body.
    pub fn events(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("data: ").map(str::to_string))
            .collect()
    }
}

/// One HTTP/1.1 request on a fresh connection.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    sock.write_all(head.as_bytes()).unwrap();
    if let Some(b) = body {
        // A server refusing a large body early may close before reading it all.
        let _ = sock.write_all(b);
    }
    let mut raw = Vec::new();
    let _ = sock.read_to_end(&mut raw);
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1_000_000 {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            break;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..eol])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

pub fn expected(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(rel)).unwrap()).unwrap()
}

pub fn sentences() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(fixture("bert/sentences.json")).unwrap()).unwrap()
}

pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn model_arg(name: &str, rel: &str) -> String {
    format!("{name}={}", s(&fixture(rel)))
}

pub fn library_embeddings(texts: &[&str]) -> Vec<Vec<f32>> {
    let opts = torchless::LoadOptions {
        device: torchless::DeviceSpec::Cpu,
        ..Default::default()
    };
    let enc = torchless::SentenceEncoder::load(&fixture("bert/tiny-st"), &opts).unwrap();
    texts
        .iter()
        .map(|t| enc.embed(&[t], 1).unwrap().remove(0))
        .collect()
}

#[test]
fn embeddings_equal_sentence_transformers_and_the_library() {
    let m = model_arg("minilm", "bert/tiny-st");
    let server = Server::start(&["--model", &m]);
    let texts = sentences();
    let want = expected("bert/expected.json");
    let r = server.post(
        "/v1/embeddings",
        &json!({"model": "minilm", "input": texts}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "minilm");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), texts.len());
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let lib = library_embeddings(&refs);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["index"], i);
        assert_eq!(d["object"], "embedding");
        let got = floats(&d["embedding"]);
        let st = floats(&want["embeddings"][i]);
        assert!(
            rel_err(&got, &st) < 1e-4,
            "sentence {i}: {}",
            rel_err(&got, &st)
        );
        assert!(
            max_abs(&got, &lib[i]) < 1e-5,
            "sentence {i} vs SentenceEncoder::embed"
        );
    }
    // usage: the tokens of every input (special tokens included, truncated as embedded).
    let tokens: usize = (0..texts.len())
        .map(|i| {
            let row = ints(&want["batch"]["attention_mask"][i]);
            row.iter().filter(|&&x| x == 1).count()
        })
        .sum();
    assert_eq!(v["usage"]["prompt_tokens"], tokens);
    assert_eq!(v["usage"]["total_tokens"], tokens);

    // A single string, base64 (little-endian f32, as OpenAI), and TEI's /embed.
    let r = server.post(
        "/v1/embeddings",
        &json!({"model": "minilm", "input": texts[1], "encoding_format": "base64"}),
    );
    let b64 = r.json()["data"][0]["embedding"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let got: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(max_abs(&got, &lib[1]) < 1e-5);
    let r = server.post("/embed", &json!({"inputs": [texts[2], texts[3]]}));
    assert_eq!(r.status, 200, "{}", r.text());
    let rows = r.json();
    assert!(max_abs(&floats(&rows[0]), &lib[2]) < 1e-5);
    assert!(max_abs(&floats(&rows[1]), &lib[3]) < 1e-5);
    // The folder normalises, so `normalize: false` cannot be honoured: said, not ignored.
    let msg = server
        .post("/embed", &json!({"inputs": "x", "normalize": false}))
        .error(400);
    assert!(msg.contains("`normalize`"), "{msg}");
}

#[test]
fn concurrent_clients_each_get_their_own_rows() {
    let m = model_arg("minilm", "bert/tiny-st");
    let server = Server::start(&[
        "--model",
        &m,
        "--max-batch-size",
        "8",
        "--max-wait-ms",
        "20",
    ]);
    let texts = sentences();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let lib = library_embeddings(&refs);
    let addr = server.addr;
    let handles: Vec<_> = (0..64)
        .map(|c| {
            let texts = texts.clone();
            std::thread::spawn(move || {
                // Client c sends 1 to 3 sentences of mixed lengths, in its own order.
                let picks: Vec<usize> = (0..(c % 3 + 1))
                    .map(|k| (c * 5 + k * 3) % texts.len())
                    .collect();
                let input: Vec<&str> = picks.iter().map(|&i| texts[i].as_str()).collect();
                let body = json!({"model": "minilm", "input": input}).to_string();
                let r = request(addr, "POST", "/v1/embeddings", &[], Some(body.as_bytes()));
                assert_eq!(r.status, 200, "{}", r.text());
                (picks, r.json())
            })
        })
        .collect();
    for h in handles {
        let (picks, v) = h.join().unwrap();
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), picks.len());
        for (d, &i) in data.iter().zip(&picks) {
            assert!(
                max_abs(&floats(&d["embedding"]), &lib[i]) < 1e-5,
                "sentence {i}"
            );
        }
    }
    assert!(server.metric("torchless_batch_size_count{model=\"minilm\"}") >= 1.0);
}

#[test]
fn rerank_and_text_classification_match_cross_encoder() {
    let rr = model_arg("rr", "rerank/bert-reranker");
    let cls = model_arg("cls", "rerank/xlmr-classifier");
    let server = Server::start(&["--model", &rr, "--model", &cls]);
    let want = expected("rerank/expected.json");
    // The pairs asked with the fixture's query (the last one has its own).
    let docs: Vec<String> = want["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .take_while(|p| p[0] == want["query"])
        .map(|p| p[1].as_str().unwrap().to_string())
        .collect();
    assert_eq!(docs.len(), 5);
    let r = server.post(
        "/rerank",
        &json!({"model": "rr", "query": want["query"], "texts": docs}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ranked = r.json();
    let ranked = ranked.as_array().unwrap();
    assert_eq!(ranked.len(), docs.len());
    let scores = floats(&want["bert-reranker"]["scores"]);
    let mut last = f64::INFINITY;
    let mut seen = vec![false; docs.len()];
    for e in ranked {
        let i = e["index"].as_u64().unwrap() as usize;
        let score = e["score"].as_f64().unwrap();
        assert!(
            (score as f32 - scores[i]).abs() < 1e-4,
            "doc {i}: {score} vs {}",
            scores[i]
        );
        assert!(score <= last, "not sorted best first");
        last = score;
        seen[i] = true;
    }
    assert!(seen.iter().all(|&x| x));

    // Texts through the three-label classifier: logits as PyTorch, labels from id2label.
    let x = &want["xlmr-classifier"];
    let texts: Vec<String> = want["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let r = server.post(
        "/v1/classify",
        &json!({"model": "cls", "input": texts, "top_k": 1}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    for (i, d) in v["data"].as_array().unwrap().iter().enumerate() {
        let logits = floats(&d["logits"]);
        let wl = floats(&x["texts"][i]["logits"]);
        assert!(max_abs(&logits, &wl) < 1e-4, "text {i}");
        let best = (0..wl.len())
            .max_by(|&a, &b| wl[a].total_cmp(&wl[b]))
            .unwrap();
        assert_eq!(d["labels"][0]["index"], best);
        assert_eq!(d["labels"][0]["label"], x["id2label"][best.to_string()]);
    }
    // A reranker is not an embedder, and rerank needs one label.
    let msg = server
        .post("/v1/embeddings", &json!({"model": "rr", "input": "x"}))
        .error(400);
    assert!(msg.contains("/rerank"), "{msg}");
    let msg = server
        .post(
            "/rerank",
            &json!({"model": "cls", "query": "q", "texts": ["a"]}),
        )
        .error(400);
    assert!(msg.contains("3 labels"), "{msg}");
}

#[test]
fn image_classification_from_png_and_from_a_tensor() {
    let vit = model_arg("vit", "vit");
    let server = Server::start(&["--model", &vit]);
    let want = expected("vit/expected.json");
    let png = std::fs::read(fixture("resnet/image.png")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    let pixels = floats(&want["image_pixel_values"]);
    let r = server.post(
        "/v1/classify",
        &json!({"model": "vit", "images": [b64, {"data": pixels, "shape": [3, 32, 32]}], "top_k": 2}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let wl = floats(&want["image_logits"][0]);
    for d in v["data"].as_array().unwrap() {
        assert!(rel_err(&floats(&d["logits"]), &wl) < 1e-4);
        let best = (0..wl.len())
            .max_by(|&a, &b| wl[a].total_cmp(&wl[b]))
            .unwrap();
        assert_eq!(d["labels"][0]["label"], want["labels"][best]);
        assert_eq!(d["labels"].as_array().unwrap().len(), 2);
    }
    let msg = server
        .post(
            "/v1/classify",
            &json!({"model": "vit", "images": [{"data": [0.0], "shape": [3, 2, 2]}]}),
        )
        .error(400);
    assert!(msg.contains("`images[0]`"), "{msg}");
    let msg = server
        .post(
            "/v1/classify",
            &json!({"model": "vit", "images": ["bm90IGFuIGltYWdl"]}),
        )
        .error(400);
    assert!(msg.contains("not a PNG or JPEG"), "{msg}");
}

pub fn gpt2_case() -> (Value, Value) {
    let e = expected("decoders/expected.json");
    let g = e["models"]["gpt2"].clone();
    (g["text_cases"][0].clone(), g)
}

#[test]
fn completions_are_greedy_as_transformers_and_stream_the_same_text() {
    let gpt2 = model_arg("gpt2", "decoders/gpt2");
    let server = Server::start(&["--model", &gpt2]);
    let (case, g) = gpt2_case();
    let new_ids = ints(&case["greedy_new_ids"]);
    let body = json!({"model": "gpt2", "prompt": case["text"], "max_tokens": new_ids.len(), "temperature": 0});
    let r = server.post("/v1/completions", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let choice = &v["choices"][0];
    assert_eq!(ints(&choice["token_ids"]), new_ids);
    assert_eq!(choice["text"], case["greedy_text"]);
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(
        v["usage"]["prompt_tokens"],
        case["prompt_ids"].as_array().unwrap().len()
    );
    assert_eq!(v["usage"]["completion_tokens"], new_ids.len());

    // The same ids as `torchless generate`.
    let dir = fixture("decoders/gpt2");
    let n = new_ids.len().to_string();
    let text = case["text"].as_str().unwrap();
    let o = crate::common::torchless(&[
        "generate",
        "--model",
        s(&dir),
        "--device",
        "cpu",
        "--prompt",
        text,
        "--max-new-tokens",
        &n,
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cli: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ints(&cli["new_ids"]), new_ids);

    // Streamed: OpenAI chunks whose texts concatenate to the whole text, then [DONE].
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let r = server.post("/v1/completions", &sbody);
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = r.events();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let streamed: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, case["greedy_text"].as_str().unwrap());
    let ids: Vec<u32> = chunks
        .iter()
        .flat_map(|c| ints(&c["choices"][0]["token_ids"]))
        .collect();
    assert_eq!(ids, new_ids);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));

    // A prompt whose continuation holds incomplete characters: the ids of held-back text still
    // reach the client, and the pieces add up to the whole text.
    let odd = &g["text_cases"][1];
    let odd_ids = ints(&odd["greedy_new_ids"]);
    let ob = json!({"model": "gpt2", "prompt": odd["text"], "max_tokens": odd_ids.len(), "temperature": 0, "stream": true});
    let events = server.post("/v1/completions", &ob).events();
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let ids: Vec<u32> = chunks
        .iter()
        .flat_map(|c| ints(&c["choices"][0]["token_ids"]))
        .collect();
    assert_eq!(ids, odd_ids);
    let streamed: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, odd["greedy_text"].as_str().unwrap());

    // Token-id prompts; an end-of-sequence id is finish_reason "stop".
    let c = &g["cases"][0];
    assert_eq!(c["stop"], "eos");
    let r = server.post(
        "/v1/completions",
        &json!({"model": "gpt2", "prompt": c["prompt_ids"], "max_tokens": 20, "temperature": 0}),
    );
    let v = r.json();
    assert_eq!(
        ints(&v["choices"][0]["token_ids"]),
        ints(&c["greedy_new_ids"])
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    // A stop string cuts the text before it, streamed or not.
    let full = case["greedy_text"].as_str().unwrap();
    let stop = "GG";
    let cut = &full[..full.find(stop).unwrap()];
    let mut sb = body.clone();
    sb["stop"] = json!([stop]);
    let v = server.post("/v1/completions", &sb).json();
    assert_eq!(v["choices"][0]["text"], cut);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    sb["stream"] = json!(true);
    let events = server.post("/v1/completions", &sb).events();
    let streamed: String = events[..events.len() - 1]
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e).unwrap()["choices"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(streamed, cut);

    assert_eq!(
        server.metric("torchless_generated_tokens_total") as usize,
        // Two whole runs, the odd text, the id prompt, and the tokens up to the stop string twice.
        2 * new_ids.len() + odd_ids.len() + ints(&c["greedy_new_ids"]).len() + 2 * 3
    );
}

#[test]
fn chat_uses_the_folder_chat_template() {
    // llama: a short template and 96 positions (gpt2's template does not fit its 64).
    let llama = model_arg("llama", "decoders/llama");
    let server = Server::start(&["--model", &llama]);
    let dir = fixture("decoders/llama");
    let messages = json!([{"role": "user", "content": "The quick brown fox"}]);
    let body = json!({"model": "llama", "messages": messages, "max_tokens": 5, "temperature": 0});
    let r = server.post("/v1/chat/completions", &body);
    match torchless::chat::ChatTemplate::from_folder(&dir) {
        // Templates not readable: the error is the server's, said as such.
        Err(e) => {
            let msg = r.error(500);
            assert!(msg.contains(&e.to_string()), "{msg}");
        }
        Ok(None) => {
            let msg = r.error(400);
            assert!(msg.contains("no chat template"), "{msg}");
        }
        Ok(Some(t)) => {
            assert_eq!(r.status, 200, "{}", r.text());
            let msgs: Vec<torchless::chat::ChatMessage> = serde_json::from_value(messages).unwrap();
            let prompt = t.render(&msgs, true).unwrap();
            let v = r.json();
            assert_eq!(v["object"], "chat.completion");
            assert_eq!(v["choices"][0]["message"]["role"], "assistant");
            // The same ids as a completion of the rendered prompt, tokenized without adding
            // special tokens (as `apply_chat_template(tokenize=True)`).
            let opts = torchless::LoadOptions {
                device: torchless::DeviceSpec::Cpu,
                ..Default::default()
            };
            let gen = torchless::TextGenerator::load(&dir, &opts).unwrap();
            let ids = gen
                .tokenizer()
                .unwrap()
                .encode(prompt.as_str(), false)
                .unwrap();
            let ids = ids.get_ids().to_vec();
            let c = server.post(
                "/v1/completions",
                &json!({"model": "llama", "prompt": ids, "max_tokens": 5, "temperature": 0}),
            );
            assert_eq!(c.status, 200, "{}", c.text());
            let c = c.json();
            let chat_ids = ints(&v["choices"][0]["token_ids"]);
            assert!(!chat_ids.is_empty());
            assert_eq!(chat_ids, ints(&c["choices"][0]["token_ids"]));
            assert_eq!(
                v["choices"][0]["message"]["content"],
                c["choices"][0]["text"]
            );
            assert_eq!(v["usage"]["prompt_tokens"], ids.len());
            // Streamed: a role chunk, content deltas adding up to the same text, [DONE].
            let mut sb = body.clone();
            sb["stream"] = json!(true);
            let events = server.post("/v1/chat/completions", &sb).events();
            assert_eq!(events.last().unwrap(), "[DONE]");
            let chunks: Vec<Value> = events[..events.len() - 1]
                .iter()
                .map(|e| serde_json::from_str(e).unwrap())
                .collect();
            assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
            assert!(chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk"));
            let streamed: String = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(
                streamed,
                v["choices"][0]["message"]["content"].as_str().unwrap()
            );
        }
    }
    let msg = server
        .post(
            "/v1/chat/completions",
            &json!({"model": "llama", "messages": []}),
        )
        .error(400);
    assert!(msg.contains("`messages`"), "{msg}");
}

#[test]
fn refusals_have_their_status_codes_and_openai_error_bodies() {
    let m = model_arg("minilm", "bert/tiny-st");
    let gpt2 = model_arg("gpt2", "decoders/gpt2");
    let server = Server::start(&[
        "--model",
        &m,
        "--model",
        &gpt2,
        "--max-body-bytes",
        "4096",
        "--max-new-tokens",
        "8",
    ]);
    let msg = server
        .post("/v1/embeddings", &json!({"model": "nope", "input": "x"}))
        .error(404);
    assert!(msg.contains("\"nope\""), "{msg}");
    let msg = server
        .post("/v1/embeddings", &json!({"model": "minilm"}))
        .error(400);
    assert!(msg.contains("`input`"), "{msg}");
    let msg = server
        .post("/v1/embeddings", &json!({"model": 3, "input": "x"}))
        .error(400);
    assert!(msg.contains("`model`"), "{msg}");
    let msg = server
        .post(
            "/v1/embeddings",
            &json!({"model": "minilm", "input": ["a", 7]}),
        )
        .error(400);
    assert!(msg.contains("`input[1]`"), "{msg}");
    let msg = server
        .call("POST", "/v1/embeddings", &[], Some(b"{not json"))
        .error(400);
    assert!(msg.contains("invalid JSON"), "{msg}");
    let big = json!({"model": "minilm", "input": "x".repeat(10_000)});
    server.post("/v1/embeddings", &big).error(413);
    let msg = server
        .post(
            "/v1/completions",
            &json!({"model": "gpt2", "prompt": "a", "max_tokens": 9}),
        )
        .error(400);
    assert!(
        msg.contains("`max_tokens`") && msg.contains("--max-new-tokens"),
        "{msg}"
    );
    let msg = server
        .post(
            "/v1/completions",
            &json!({"model": "gpt2", "prompt": [1, 99999]}),
        )
        .error(400);
    assert!(msg.contains("vocabulary"), "{msg}");
    server.get("/no/such/route").error(404);
    // The models list and the probes.
    let v = server.get("/v1/models").json();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt2", "minilm"]);
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.get("/ready").status, 200);
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.contains("torchless_requests_total{route=\"/v1/embeddings\",status=\"404\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("torchless_requests_total{route=\"/v1/embeddings\",status=\"413\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE torchless_batch_seconds histogram"));
}

#[test]
fn a_bearer_token_guards_every_route_but_health() {
    let m = model_arg("minilm", "bert/tiny-st");
    let server = Server::start_env(&["--model", &m], &[("TORCHLESS_API_KEY", "s3cret")]);
    let body = json!({"model": "minilm", "input": "x"}).to_string();
    server
        .call("POST", "/v1/embeddings", &[], Some(body.as_bytes()))
        .error(401);
    server
        .call(
            "POST",
            "/v1/embeddings",
            &[("Authorization", "Bearer wrong")],
            Some(body.as_bytes()),
        )
        .error(401);
    server.call("GET", "/metrics", &[], None).error(401);
    let ok = server.call(
        "POST",
        "/v1/embeddings",
        &[("Authorization", "Bearer s3cret")],
        Some(body.as_bytes()),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn a_full_queue_is_429_with_retry_after() {
    let m = model_arg("minilm", "bert/tiny-st");
    // One input per batch and two waiting: a request of 12 inputs queues 12 jobs at once.
    let server = Server::start(&["--model", &m, "--max-batch-size", "1", "--max-queue", "2"]);
    let input: Vec<String> = (0..12).map(|i| format!("sentence {i}")).collect();
    let r = server.post(
        "/v1/embeddings",
        &json!({"model": "minilm", "input": input}),
    );
    let msg = r.error(429);
    assert!(msg.contains("--max-queue"), "{msg}");
    assert_eq!(r.header("retry-after"), Some("1"));
    // The queue drains: a small request goes through.
    let r = server.post("/v1/embeddings", &json!({"model": "minilm", "input": "ok"}));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_request_past_the_timeout_is_504_and_never_runs() {
    let m = model_arg("minilm", "bert/tiny-st");
    // A batch waits 3 s for company; the request gives up after 0.2 s.
    let server = Server::start(&[
        "--model",
        &m,
        "--max-wait-ms",
        "3000",
        "--request-timeout",
        "0.2",
    ]);
    let msg = server
        .post(
            "/v1/embeddings",
            &json!({"model": "minilm", "input": "too slow"}),
        )
        .error(504);
    assert!(msg.contains("--request-timeout"), "{msg}");
    // When its batch closes the abandoned input is dropped, not run.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("torchless_cancelled_total{model=\"minilm\"}") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the timed-out request was never dropped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        server.metric("torchless_batch_size_count{model=\"minilm\"}"),
        0.0
    );
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let m = model_arg("minilm", "bert/tiny-st");
    // The batch waits 1.5 s, so the request is still in flight when the signal arrives.
    let mut server = Server::start(&["--model", &m, "--max-wait-ms", "1500"]);
    let addr = server.addr;
    let client = std::thread::spawn(move || {
        let body = json!({"model": "minilm", "input": "Hello world"}).to_string();
        request(addr, "POST", "/v1/embeddings", &[], Some(body.as_bytes()))
    });
    // The /metrics request counts itself: 2 means the embedding request is in flight too.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("torchless_requests_in_flight") < 2.0 {
        assert!(Instant::now() < deadline, "the request never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) },
        0
    );
    let r = client.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let lib = library_embeddings(&["Hello world"]);
    assert!(max_abs(&floats(&r.json()["data"][0]["embedding"]), &lib[0]) < 1e-5);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_bad_model_folder_fails_before_listening() {
    let o = crate::common::torchless(&["serve", "--port", "0", "--model", "x=/nonexistent/folder"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("model \"x\""), "{err}");
    assert!(!err.contains("listening on"), "{err}");
    let o = crate::common::torchless(&["serve", "--model", "no-equals-sign"]);
    assert!(!o.status.success());
}

#[test]
fn run_serves_a_torch_export_program() {
    let b64 = base64::engine::general_purpose::STANDARD;
    let m = model_arg("bert", "graph/bert_tiny/program.pt2");
    let server = Server::start(&["--model", &m]);
    let dir = fixture("graph/bert_tiny/dyn");
    let npy = |name: &str| torchless::npy::read_npy_typed(&dir.join(name)).unwrap();
    let inputs: Vec<Value> = (0..3)
        .map(|i| {
            let a = npy(&format!("in_{i}.npy"));
            json!({"dtype": "int64", "shape": a.shape, "data": b64.encode(&a.data)})
        })
        .collect();
    let r = server.post("/v1/run", &json!({"model": "bert", "inputs": inputs}));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let outs = v["outputs"].as_array().unwrap();
    assert_eq!(outs.len(), 2);
    for (i, o) in outs.iter().enumerate() {
        let want = npy(&format!("out_{i}.npy"));
        assert_eq!(o["dtype"], "float32");
        assert_eq!(o["shape"], json!(want.shape));
        let got = b64.decode(o["data"].as_str().unwrap()).unwrap();
        let f = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let (g, w) = (f(&got), f(&want.data));
        assert!(rel_err(&g, &w) < 1e-4, "output {i}: {}", rel_err(&g, &w));
    }
    // The model needs three inputs: the program's message, as a 400.
    let r = server.post("/v1/run", &json!({"inputs": [inputs[0]]}));
    assert!(r.error(400).contains("takes 3 input(s)"), "{}", r.text());
    // A dtype it does not know, and bytes that do not fit the shape: 400 naming the field.
    let bad = json!({"inputs": [{"dtype": "float8", "shape": [1], "data": ""}]});
    assert!(server
        .post("/v1/run", &bad)
        .error(400)
        .contains("inputs[0].dtype"));
    let short = json!({"inputs": [{"dtype": "int64", "shape": [2], "data": b64.encode([0u8; 8])}]});
    assert!(server
        .post("/v1/run", &short)
        .error(400)
        .contains("inputs[0]"));
    // Another route for a program: 400 naming /v1/run.
    let r = server.post("/v1/embeddings", &json!({"model": "bert", "input": "x"}));
    assert!(r.error(400).contains("/v1/run"), "{}", r.text());
}
