//! `torchless worker` against a real `redis-server` (Debian's `redis-server` package; these
//! tests fail, not skip, without it): results equal the library's, poison requests are answered
//! and acknowledged, a worker killed with SIGKILL mid-batch loses nothing (another claims its
//! entries), a request answered twice gives one response, SIGTERM finishes the batch, and an
//! unreachable Redis ends in a clear error after a bounded backoff.
//!
//! Mid-batch kills and signals use the test hook `TORCHLESS_WORKER_TEST_DELAY_MS` (a pause
//! between reading a batch and running it). Every wait is a bounded poll.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::Value;
use torchless::{DeviceSpec, LoadOptions, SentenceEncoder, TextClassifier};

use crate::common::fixture;

const STREAM: &str = "requests";
const GROUP: &str = "torchless";

/// A `redis-server` on a free loopback port in a temporary folder, killed when dropped.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Redis::spawn(dir.path(), port);
        let r = Redis {
            child,
            port,
            _dir: dir,
        };
        r.wait_ready();
        r
    }

    fn spawn(dir: &Path, port: u16) -> Child {
        Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): the worker tests need a real Redis; \
                     install it with `sudo apt-get install -y redis-server` (Debian/Ubuntu)"
                )
            })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let ok = wait_for(Duration::from_secs(20), || {
            redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
        });
        assert!(ok, "redis-server on port {} did not answer PING", self.port);
    }

    fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }

    /// Kills the server and starts a fresh one (no persistence: an empty database) on the
    /// same port.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Redis::spawn(self._dir.path(), self.port);
        self.wait_ready();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Polls `f` every 50 ms until it holds or `limit` passes.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A running `torchless worker`, killed when dropped; its stderr goes to a file.
struct Worker {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Worker {
    fn start(redis: &Redis, model: &str, consumer: &str, extra: &[&str], delay_ms: u64) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.txt");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_torchless"));
        cmd.arg("worker")
            .args(["--model", fixture(model).to_str().unwrap()])
            .args(["--device", "cpu", "--redis", &redis.url()])
            .args(["--stream", STREAM, "--group", GROUP, "--consumer", consumer])
            .args(["--block-ms", "100", "--verbose"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if delay_ms > 0 {
            cmd.env("TORCHLESS_WORKER_TEST_DELAY_MS", delay_ms.to_string());
        }
        Worker {
            child: cmd.spawn().expect("run torchless worker"),
            log,
            _dir: dir,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.child.id());
    }

    /// Waits (bounded) for the process to exit; its exit code, or `None` for a signal.
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let mut status = None;
        let exited = wait_for(limit, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        assert!(
            exited,
            "the worker did not exit in {limit:?}:\n{}",
            self.stderr()
        );
        status.and_then(|s| s.code())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn xadd(c: &mut redis::Connection, fields: &[(&str, &str)]) -> String {
    c.xadd(STREAM, "*", fields).unwrap()
}

/// Every entry of a reply stream: (request id, response JSON).
fn replies(c: &mut redis::Connection, stream: &str) -> Vec<(String, Value)> {
    let r: redis::streams::StreamRangeReply = c.xrange_all(stream).unwrap();
    r.ids
        .iter()
        .map(|e| {
            let id: String = e.get("id").unwrap();
            let result: String = e.get("result").unwrap();
            (id, serde_json::from_str(&result).unwrap())
        })
        .collect()
}

fn xlen(c: &mut redis::Connection, stream: &str) -> usize {
    c.xlen(stream).unwrap()
}

/// Entries pending in the group (read, not acknowledged); `None` before the group exists.
fn pending(c: &mut redis::Connection) -> Option<usize> {
    let p: redis::RedisResult<redis::streams::StreamPendingReply> = c.xpending(STREAM, GROUP);
    p.ok().map(|p| p.count())
}

fn wait_replies(c: &mut redis::Connection, stream: &str, n: usize, w: &Worker) {
    let ok = wait_for(Duration::from_secs(120), || xlen(c, stream) >= n);
    assert!(
        ok,
        "{stream}: {} of {n} replies:\n{}",
        xlen(c, stream),
        w.stderr()
    );
}

fn cpu() -> LoadOptions {
    LoadOptions {
        device: DeviceSpec::Cpu,
        ..Default::default()
    }
}

fn sentences() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(fixture("bert/sentences.json")).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    crate::common::floats(v)
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-5, "{what}[{i}]: {g} vs {w}");
    }
}

/// The library's embeddings of `texts`, one request's worth.
fn embeddings(texts: &[String]) -> Vec<Vec<f32>> {
    let enc = SentenceEncoder::load(&fixture("bert/tiny-st"), &cpu()).unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    enc.embed(&refs, 32).unwrap()
}

#[test]
fn worker_embeddings_equal_the_library_and_poison_requests_are_answered_and_acked() {
    let redis = Redis::start();
    let mut c = redis.conn();
    let texts = sentences();
    let (a, b) = texts.split_at(3);
    let json = |t: &[String]| serde_json::to_string(t).unwrap();
    xadd(
        &mut c,
        &[
            ("id", "e1"),
            ("reply_to", "out"),
            ("op", "embed"),
            ("input", &json(a)),
        ],
    );
    xadd(
        &mut c,
        &[
            ("id", "e2"),
            ("reply_key", "answer:e2"),
            ("op", "embed"),
            ("input", &json(b)),
        ],
    );
    // (request id, its fields besides id and reply_to, how the error starts)
    type Poison<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let poison: &[Poison] = &[
        (
            "p1",
            &[("op", "embed"), ("input", "[\"x\"")],
            "field `input` is not JSON",
        ),
        (
            "p2",
            &[("op", "summarize"), ("input", "[]")],
            "field `op`: unknown operation",
        ),
        ("p3", &[("input", "[]")], "missing field `op`"),
        ("p4", &[("op", "embed")], "missing field `input`"),
        (
            "p5",
            &[("op", "embed"), ("input", "{\"query\": 1}")],
            "field `input`: op `embed` takes",
        ),
        (
            "p6",
            &[
                ("op", "rerank"),
                ("input", "{\"query\":\"q\",\"texts\":[]}"),
            ],
            "field `op`: this worker's model",
        ),
    ];
    for (id, fields, _) in poison {
        let mut f = vec![("id", *id), ("reply_to", "out")];
        f.extend_from_slice(fields);
        xadd(&mut c, &f);
    }
    // No id: answered with `"id": null`; no destination: recorded under the result key only.
    xadd(
        &mut c,
        &[("reply_to", "out"), ("op", "embed"), ("input", "[]")],
    );
    xadd(
        &mut c,
        &[("id", "nowhere"), ("op", "embed"), ("input", "[]")],
    );

    let mut w = Worker::start(&redis, "bert/tiny-st", "w1", &["--max-batch-size", "4"], 0);
    wait_replies(&mut c, "out", 1 + poison.len() + 1, &w);
    let ok = wait_for(Duration::from_secs(60), || {
        c.exists::<_, bool>("answer:e2").unwrap()
            && c.exists::<_, bool>("torchless:result:requests:nowhere")
                .unwrap()
            && pending(&mut c) == Some(0)
    });
    assert!(ok, "{}", w.stderr());

    let got: HashMap<String, Value> = replies(&mut c, "out").into_iter().collect();
    assert_eq!(
        got.len(),
        1 + poison.len() + 1,
        "one reply per request: {got:?}"
    );
    let e1 = &got["e1"];
    assert_eq!(e1["ok"], true);
    assert_eq!(e1["id"], "e1");
    let want = embeddings(a);
    let rows = e1["result"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    for (i, (g, w)) in rows.iter().zip(&want).enumerate() {
        assert_close(&floats(g), w, &format!("e1 embedding {i}"));
    }
    let e2: String = c.get("answer:e2").unwrap();
    let e2: Value = serde_json::from_str(&e2).unwrap();
    assert_eq!(e2["ok"], true);
    let want = embeddings(b);
    for (i, (g, w)) in e2["result"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&want)
        .enumerate()
    {
        assert_close(&floats(g), w, &format!("e2 embedding {i}"));
    }
    assert_eq!(e2["result"].as_array().unwrap().len(), want.len());
    // The reply key expires with the result TTL.
    let ttl: i64 = c.ttl("answer:e2").unwrap();
    assert!(ttl > 0 && ttl <= 86_400, "ttl {ttl}");
    for (id, _, message) in poison {
        let r = &got[*id];
        assert_eq!(r["ok"], false, "{id}: {r}");
        let error = r["error"].as_str().unwrap();
        assert!(
            error.starts_with(message),
            "{id}: {error:?} should start with {message:?}"
        );
    }
    assert_eq!(got[""]["id"], Value::Null);
    assert_eq!(got[""]["error"], "missing field `id` (the request id)");
    let nowhere: String = c.get("torchless:result:requests:nowhere").unwrap();
    assert!(
        nowhere.contains("missing field `reply_to` or `reply_key`"),
        "{nowhere}"
    );
    // The recorded result of e1 is the response sent.
    let recorded: String = c.get("torchless:result:requests:e1").unwrap();
    assert_eq!(serde_json::from_str::<Value>(&recorded).unwrap(), *e1);
    assert_eq!(pending(&mut c), Some(0));

    // The same request id sent again (a client retry, here with other texts) gets the
    // recorded response again: results are per request id.
    let n = xlen(&mut c, "out");
    xadd(
        &mut c,
        &[
            ("id", "e1"),
            ("reply_to", "out"),
            ("op", "embed"),
            ("input", "[\"other\"]"),
        ],
    );
    wait_replies(&mut c, "out", n + 1, &w);
    let again = replies(&mut c, "out").pop().unwrap();
    assert_eq!(again.0, "e1");
    assert_eq!(again.1, *e1);

    w.signal(libc::SIGTERM);
    assert_eq!(
        w.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        w.stderr()
    );
}

#[test]
fn worker_rerank_and_classify_equal_the_text_classifier() {
    let redis = Redis::start();
    let mut c = redis.conn();
    let docs: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(fixture("rerank/documents.json")).unwrap())
            .unwrap();
    let query = "how do transformers read text?";
    let input = serde_json::json!({"query": query, "texts": docs}).to_string();
    xadd(
        &mut c,
        &[
            ("id", "r1"),
            ("reply_to", "out"),
            ("op", "rerank"),
            ("input", &input),
        ],
    );
    let short =
        serde_json::json!({"query": "bananas", "texts": ["Bananas are yellow."]}).to_string();
    xadd(
        &mut c,
        &[
            ("id", "r2"),
            ("reply_key", "answer:r2"),
            ("op", "rerank"),
            ("input", &short),
        ],
    );
    let classify = serde_json::to_string(&docs[..3]).unwrap();
    xadd(
        &mut c,
        &[
            ("id", "c1"),
            ("reply_to", "out"),
            ("op", "classify"),
            ("input", &classify),
        ],
    );
    xadd(
        &mut c,
        &[
            ("id", "x1"),
            ("reply_to", "out"),
            ("op", "embed"),
            ("input", "[\"a\"]"),
        ],
    );

    let w = Worker::start(&redis, "rerank/bert-reranker", "w1", &[], 0);
    wait_replies(&mut c, "out", 3, &w);
    assert!(wait_for(Duration::from_secs(60), || c
        .exists::<_, bool>("answer:r2")
        .unwrap()));
    let got: HashMap<String, Value> = replies(&mut c, "out").into_iter().collect();

    let model = TextClassifier::load(&fixture("rerank/bert-reranker"), &cpu()).unwrap();
    let pairs: Vec<(&str, &str)> = docs.iter().map(|d| (query, d.as_str())).collect();
    let want: Vec<f32> = model
        .score_pairs(&pairs)
        .unwrap()
        .into_iter()
        .map(|r| r[0])
        .collect();
    assert_eq!(got["r1"]["ok"], true, "{}", got["r1"]);
    assert_close(&floats(&got["r1"]["result"]), &want, "r1 scores");
    let r2: String = c.get("answer:r2").unwrap();
    let r2: Value = serde_json::from_str(&r2).unwrap();
    let want = model
        .score_pairs(&[("bananas", "Bananas are yellow.")])
        .unwrap();
    assert_close(&floats(&r2["result"]), &want[0], "r2 score");

    let refs: Vec<&str> = docs[..3].iter().map(String::as_str).collect();
    let want = model.classify(&refs).unwrap();
    let rows = got["c1"]["result"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (row, w) in rows.iter().zip(&want) {
        assert_eq!(row[0]["label"], "LABEL_0");
        assert_close(&[row[0]["score"].as_f64().unwrap() as f32], w, "c1 score");
    }
    assert_eq!(got["x1"]["ok"], false);
    assert_eq!(pending(&mut c), Some(0));
}

#[test]
fn worker_generate_equals_transformers_greedy_continuations() {
    let redis = Redis::start();
    let mut c = redis.conn();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("decoders/expected.json")).unwrap())
            .unwrap();
    let cases = expected["models"]["gpt2"]["text_cases"].as_array().unwrap();
    for (i, case) in cases.iter().enumerate() {
        let input = serde_json::json!({"prompt": case["text"], "max_new_tokens": 20}).to_string();
        let id = format!("g{i}");
        xadd(
            &mut c,
            &[
                ("id", &id),
                ("reply_to", "out"),
                ("op", "generate"),
                ("input", &input),
            ],
        );
    }
    let too_long = r#"{"prompt": "x", "max_new_tokens": 21}"#;
    xadd(
        &mut c,
        &[
            ("id", "long"),
            ("reply_to", "out"),
            ("op", "generate"),
            ("input", too_long),
        ],
    );
    let w = Worker::start(
        &redis,
        "decoders/gpt2",
        "w1",
        &["--max-new-tokens", "20"],
        0,
    );
    wait_replies(&mut c, "out", cases.len() + 1, &w);
    let got: HashMap<String, Value> = replies(&mut c, "out").into_iter().collect();
    for (i, case) in cases.iter().enumerate() {
        let r = &got[&format!("g{i}")];
        assert_eq!(r["ok"], true, "{r}");
        // Greedy continuations of the same GPT-2 in transformers, token for token.
        assert_eq!(r["result"]["token_ids"], case["greedy_new_ids"], "case {i}");
        assert_eq!(r["result"]["text"], case["greedy_text"], "case {i}");
        let n = case["greedy_new_ids"].as_array().unwrap().len();
        let stop = if n == 20 { "max_tokens" } else { "eos" };
        assert_eq!(r["result"]["stop"], stop, "case {i}");
    }
    assert_eq!(
        got["long"]["error"],
        "field `input`: max_new_tokens 21 is more than the worker's --max-new-tokens (20)"
    );
    assert!(wait_for(Duration::from_secs(30), || pending(&mut c) == Some(0)));
}

/// The requests of the recovery tests and their expected embeddings.
fn recovery_requests(c: &mut redis::Connection, n: usize) -> HashMap<String, Vec<Vec<f32>>> {
    let texts = sentences();
    let mut want = HashMap::new();
    for i in 0..n {
        let t = vec![texts[i % texts.len()].clone(), format!("request {i}")];
        let id = format!("k{i}");
        let input = serde_json::to_string(&t).unwrap();
        xadd(
            c,
            &[
                ("id", &id),
                ("reply_to", "out"),
                ("op", "embed"),
                ("input", &input),
            ],
        );
        want.insert(id, embeddings(&t));
    }
    want
}

fn assert_one_reply_each(c: &mut redis::Connection, want: &HashMap<String, Vec<Vec<f32>>>) {
    let got = replies(c, "out");
    let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(got.len(), want.len(), "one reply per request: {ids:?}");
    let mut seen = std::collections::HashSet::new();
    for (id, r) in &got {
        assert!(seen.insert(id.clone()), "{id} answered twice");
        assert_eq!(r["ok"], true, "{r}");
        for (i, (g, w)) in r["result"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&want[id])
            .enumerate()
        {
            assert_close(&floats(g), w, &format!("{id} embedding {i}"));
        }
    }
}

#[test]
fn a_worker_killed_mid_batch_loses_nothing_another_claims_its_entries() {
    let redis = Redis::start();
    let mut c = redis.conn();
    let want = recovery_requests(&mut c, 6);
    // The first worker reads every entry, then sits in the test pause until it is killed.
    let mut first = Worker::start(
        &redis,
        "bert/tiny-st",
        "doomed",
        &["--claim-idle-ms", "0"],
        600_000,
    );
    let read = wait_for(Duration::from_secs(60), || pending(&mut c) == Some(6));
    assert!(
        read,
        "the first worker did not read the batch:\n{}",
        first.stderr()
    );
    first.signal(libc::SIGKILL);
    assert_eq!(first.wait_exit(Duration::from_secs(30)), None);
    assert_eq!(xlen(&mut c, "out"), 0);
    assert_eq!(pending(&mut c), Some(6));

    let second = Worker::start(
        &redis,
        "bert/tiny-st",
        "rescuer",
        &["--claim-idle-ms", "300"],
        0,
    );
    wait_replies(&mut c, "out", 6, &second);
    assert!(
        wait_for(Duration::from_secs(30), || pending(&mut c) == Some(0)),
        "{}",
        second.stderr()
    );
    assert_one_reply_each(&mut c, &want);
    assert!(
        second.stderr().contains("6 recovered"),
        "{}",
        second.stderr()
    );
}

#[test]
fn a_request_answered_by_two_workers_gets_one_reply() {
    let redis = Redis::start();
    let mut c = redis.conn();
    let want = recovery_requests(&mut c, 4);
    // A slow worker reads the batch; a second claims it (idle 300 ms) and answers first; when
    // the slow one answers, the entries are no longer pending and nothing is written again.
    let mut slow = Worker::start(
        &redis,
        "bert/tiny-st",
        "slow",
        &["--claim-idle-ms", "0"],
        8_000,
    );
    assert!(
        wait_for(Duration::from_secs(60), || pending(&mut c) == Some(4)),
        "{}",
        slow.stderr()
    );
    let fast = Worker::start(
        &redis,
        "bert/tiny-st",
        "fast",
        &["--claim-idle-ms", "300"],
        0,
    );
    wait_replies(&mut c, "out", 4, &fast);
    let slow_done = wait_for(Duration::from_secs(120), || {
        slow.stderr().contains("batch of 4")
    });
    assert!(slow_done, "{}", slow.stderr());
    assert_one_reply_each(&mut c, &want);
    assert_eq!(pending(&mut c), Some(0));
    slow.signal(libc::SIGTERM);
    assert_eq!(
        slow.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        slow.stderr()
    );
}

#[test]
fn an_entry_delivered_more_than_max_deliveries_is_answered_with_an_error() {
    let redis = Redis::start();
    let mut c = redis.conn();
    recovery_requests(&mut c, 2);
    let mut first = Worker::start(
        &redis,
        "bert/tiny-st",
        "doomed",
        &["--claim-idle-ms", "0"],
        600_000,
    );
    assert!(
        wait_for(Duration::from_secs(60), || pending(&mut c) == Some(2)),
        "{}",
        first.stderr()
    );
    first.signal(libc::SIGKILL);
    first.wait_exit(Duration::from_secs(30));
    let extra = ["--claim-idle-ms", "300", "--max-deliveries", "1"];
    let second = Worker::start(&redis, "bert/tiny-st", "rescuer", &extra, 0);
    wait_replies(&mut c, "out", 2, &second);
    for (id, r) in replies(&mut c, "out") {
        assert_eq!(r["ok"], false, "{id}: {r}");
        let error = r["error"].as_str().unwrap();
        assert!(
            error.starts_with("the request was delivered 2 times, more than --max-deliveries (1)"),
            "{error}"
        );
    }
    assert!(wait_for(Duration::from_secs(30), || pending(&mut c) == Some(0)));
}

#[test]
fn sigterm_mid_batch_answers_and_acks_the_batch_then_exits_0() {
    let redis = Redis::start();
    let mut c = redis.conn();
    let want = recovery_requests(&mut c, 3);
    let mut w = Worker::start(&redis, "bert/tiny-st", "w1", &[], 2_000);
    assert!(
        wait_for(Duration::from_secs(60), || pending(&mut c) == Some(3)),
        "{}",
        w.stderr()
    );
    w.signal(libc::SIGTERM);
    assert_eq!(
        w.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        w.stderr()
    );
    assert_eq!(pending(&mut c), Some(0));
    assert_one_reply_each(&mut c, &want);
    assert!(
        w.stderr().contains("stopping after the current batch"),
        "{}",
        w.stderr()
    );
}

#[test]
fn the_worker_reconnects_after_redis_restarts_and_gives_up_when_it_stays_away() {
    let mut redis = Redis::start();
    let w = Worker::start(&redis, "bert/tiny-st", "w1", &["--give-up-after", "3"], 0);
    assert!(
        wait_for(Duration::from_secs(60), || w
            .stderr()
            .contains("connected to")),
        "{}",
        w.stderr()
    );
    // A fresh, empty server: the worker reconnects and creates the stream and group again.
    redis.restart();
    let mut c = redis.conn();
    let want = recovery_requests(&mut c, 1);
    wait_replies(&mut c, "out", 1, &w);
    assert_one_reply_each(&mut c, &want);
    assert!(w.stderr().contains("retry 1 in 100 ms"), "{}", w.stderr());
    drop(c);

    // Nothing listens: bounded retries with backoff, then a clear error and a failure code.
    let gone = redis.port;
    drop(redis);
    let o = Command::new(env!("CARGO_BIN_EXE_torchless"))
        .args([
            "worker",
            "--model",
            fixture("bert/tiny-st").to_str().unwrap(),
        ])
        .args([
            "--device",
            "cpu",
            "--redis",
            &format!("redis://127.0.0.1:{gone}"),
        ])
        .args(["--give-up-after", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("kept failing for"), "{err}");
    assert!(err.contains("giving up"), "{err}");
    let retries = err.matches("retry ").count();
    assert!((2..=20).contains(&retries), "{retries} retries:\n{err}");
}

#[test]
fn worker_help_teaches_the_protocol() {
    let o = Command::new(env!("CARGO_BIN_EXE_torchless"))
        .args(["worker", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "reply_to",
        "reply_key",
        "redis-cli XADD",
        "--claim-idle-ms",
        "torchless:result:",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
