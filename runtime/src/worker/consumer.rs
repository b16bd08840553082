//! The worker's loop: read a batch (own pending entries first, then entries claimed from idle
//! consumers, then new ones), run it, answer and acknowledge every entry with one atomic Lua
//! script, and retry Redis failures with a bounded backoff.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamPendingCountReply,
    StreamReadOptions, StreamReadReply,
};
use redis::{Commands, Connection, RedisError, RedisResult, Value};

use super::model::WorkerModel;
use super::protocol::{self, Head, Input, Op, Request};
use super::{Config, Event, Summary, WorkerError};

/// Answers one entry atomically, only while it is still pending in the group:
/// records the response under the result key with SET NX (the first answer wins), writes what
/// that key holds to the reply stream and/or reply key, and XACKs the entry. An entry no longer
/// pending was answered by another worker: nothing is written. A destination of the wrong type
/// is skipped (and reported) rather than failing half-way.
///
/// KEYS: request stream, result key, reply stream, reply key (unused ones repeat the result key).
/// ARGV: group, entry id, response, ttl seconds, request id, use result key, use reply stream,
/// use reply key ("1" or "0").
/// Returns {answered (1) or already answered (0), reply stream skipped, reply key skipped}.
const ANSWER: &str = r#"
local stream, result_key, reply_stream, reply_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, entry, response, ttl, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local use_result, use_stream, use_key = ARGV[6] == '1', ARGV[7] == '1', ARGV[8] == '1'
if #redis.call('XPENDING', stream, group, entry, entry, 1) == 0 then
  return {0, 0, 0}
end
local skipped_stream, skipped_key = 0, 0
if use_stream then
  local t = redis.call('TYPE', reply_stream)['ok']
  if t ~= 'stream' and t ~= 'none' then use_stream = false; skipped_stream = 1 end
end
if use_key then
  local t = redis.call('TYPE', reply_key)['ok']
  if t ~= 'string' and t ~= 'none' then use_key = false; skipped_key = 1 end
end
local stored = response
if use_result then
  if not redis.call('SET', result_key, response, 'NX', 'EX', ttl) then
    stored = redis.call('GET', result_key) or response
  end
end
if use_stream then
  redis.call('XADD', reply_stream, '*', 'id', id, 'result', stored)
  redis.call('EXPIRE', reply_stream, ttl)
end
if use_key then
  redis.call('SET', reply_key, stored, 'EX', ttl)
end
redis.call('XACK', stream, group, entry)
return {1, skipped_stream, skipped_key}
"#;

/// One entry read from the stream.
struct Entry {
    id: String,
    fields: HashMap<String, Value>,
    /// Times delivered so far (1 for a new entry).
    deliveries: u64,
    /// Claimed from another consumer, or read again from this one's pending list.
    recovered: bool,
}

/// One response to write.
struct Answer {
    head: Head,
    response: String,
    error: Option<String>,
}

/// The connection, opened (and the group created) on first use and after any I/O failure.
struct Link {
    client: redis::Client,
    conn: Option<Connection>,
    group_ready: bool,
}

impl Link {
    fn with<T>(
        &mut self,
        cfg: &Config,
        on_event: &mut dyn FnMut(Event),
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = self
                    .client
                    .get_connection_with_timeout(Duration::from_secs(5))?;
                // A blocking read waits up to `block`; anything longer means a dead server.
                conn.set_read_timeout(Some(cfg.block + Duration::from_secs(10)))?;
                conn.set_write_timeout(Some(Duration::from_secs(10)))?;
                self.group_ready = false;
                self.conn.insert(conn)
            }
        };
        let result = if self.group_ready {
            f(conn)
        } else {
            create_group(conn, cfg).and_then(|()| {
                self.group_ready = true;
                on_event(Event::Connected {
                    url: cfg.redis_url.clone(),
                });
                f(conn)
            })
        };
        if let Err(e) = &result {
            if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                self.conn = None;
            }
            // The stream or group went away (a restarted Redis without persistence).
            if e.code() == Some("NOGROUP") {
                self.group_ready = false;
            }
        }
        result
    }
}

/// `XGROUP CREATE stream group 0 MKSTREAM`; an existing group is fine. The group starts at the
/// stream's first entry, so requests added before any worker started are answered too.
fn create_group(conn: &mut Connection, cfg: &Config) -> RedisResult<()> {
    let created: RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&cfg.stream)
        .arg(&cfg.group)
        .arg("0")
        .arg("MKSTREAM")
        .query(conn);
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// Waits between failed tries: 100 ms doubling to 5 s, giving up after `give_up_after`.
struct Backoff {
    first_failure: Option<Instant>,
    attempt: u32,
}

impl Backoff {
    fn reset(&mut self) {
        self.first_failure = None;
        self.attempt = 0;
    }

    /// Sleeps before the next try, or gives up. With `stop`, a stop request ends the wait.
    fn wait(
        &mut self,
        err: &RedisError,
        cfg: &Config,
        stop: Option<&AtomicBool>,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<(), WorkerError> {
        let first = *self.first_failure.get_or_insert_with(Instant::now);
        self.attempt = self.attempt.saturating_add(1);
        if first.elapsed() > cfg.give_up_after {
            return Err(WorkerError::GaveUp {
                url: cfg.redis_url.clone(),
                secs: first.elapsed().as_secs(),
                attempts: self.attempt,
                last: err.to_string(),
            });
        }
        let delay = Duration::from_millis(100)
            .saturating_mul(1 << self.attempt.min(6).saturating_sub(1))
            .min(Duration::from_secs(5));
        on_event(Event::Retry {
            error: err.to_string(),
            attempt: self.attempt,
            delay,
        });
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
        }
        Ok(())
    }
}

/// Where the next batch comes from.
struct Reader {
    /// Read this consumer's own pending entries first (a restart under the same name).
    own_history: bool,
    /// XAUTOCLAIM's cursor.
    cursor: String,
}

impl Reader {
    /// The next batch; with `own_only`, only this consumer's own pending entries.
    fn fetch(
        &mut self,
        conn: &mut Connection,
        cfg: &Config,
        own_only: bool,
    ) -> RedisResult<Vec<Entry>> {
        let group = StreamReadOptions::default()
            .group(&cfg.group, &cfg.consumer)
            .count(cfg.max_batch_size);
        if self.own_history {
            let reply: Option<StreamReadReply> =
                conn.xread_options(&[&cfg.stream], &["0"], &group)?;
            let ids = flatten(reply);
            if !ids.is_empty() {
                return with_deliveries(conn, cfg, ids);
            }
            self.own_history = false;
        }
        if own_only {
            return Ok(Vec::new());
        }
        if let Some(idle) = cfg.claim_idle {
            let reply: StreamAutoClaimReply = conn.xautoclaim_options(
                &cfg.stream,
                &cfg.group,
                &cfg.consumer,
                u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
                &self.cursor,
                StreamAutoClaimOptions::default().count(cfg.max_batch_size),
            )?;
            self.cursor = if reply.next_stream_id.is_empty() {
                "0-0".into()
            } else {
                reply.next_stream_id
            };
            if !reply.claimed.is_empty() {
                return with_deliveries(conn, cfg, reply.claimed);
            }
        }
        let block = usize::try_from(cfg.block.as_millis()).unwrap_or(usize::MAX);
        let reply: Option<StreamReadReply> =
            conn.xread_options(&[&cfg.stream], &[">"], &group.block(block))?;
        Ok(flatten(reply)
            .into_iter()
            .map(|s| Entry {
                id: s.id,
                fields: s.map,
                deliveries: 1,
                recovered: false,
            })
            .collect())
    }
}

fn flatten(reply: Option<StreamReadReply>) -> Vec<StreamId> {
    reply
        .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
        .unwrap_or_default()
}

/// Entries read again or claimed, with their delivery counts from XPENDING.
fn with_deliveries(
    conn: &mut Connection,
    cfg: &Config,
    ids: Vec<StreamId>,
) -> RedisResult<Vec<Entry>> {
    let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
        return Ok(Vec::new());
    };
    let pending: StreamPendingCountReply = conn.xpending_consumer_count(
        &cfg.stream,
        &cfg.group,
        &first.id,
        &last.id,
        ids.len(),
        &cfg.consumer,
    )?;
    let counts: HashMap<String, u64> = pending
        .ids
        .into_iter()
        .map(|p| (p.id, p.times_delivered as u64))
        .collect();
    Ok(ids
        .into_iter()
        .map(|s| Entry {
            deliveries: counts.get(&s.id).copied().unwrap_or(1),
            id: s.id,
            fields: s.map,
            recovered: true,
        })
        .collect())
}

/// The responses already recorded for the request ids of a batch (a request sent again, an
/// entry claimed after its first worker answered it): entry id → response.
fn recorded(
    conn: &mut Connection,
    cfg: &Config,
    entries: &[Entry],
) -> RedisResult<HashMap<String, String>> {
    let ids: Vec<(&str, String)> = entries
        .iter()
        .filter_map(|e| {
            protocol::request_id(&e.fields)
                .map(|id| (e.id.as_str(), protocol::result_key(&cfg.stream, &id)))
        })
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: Vec<&String> = ids.iter().map(|(_, k)| k).collect();
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(conn)?;
    Ok(ids
        .iter()
        .zip(values)
        .filter_map(|((entry, _), v)| v.map(|v| (entry.to_string(), v)))
        .collect())
}

/// Runs a batch: a request whose id has a recorded response gets it again; refusals are
/// answered with their error; the rest run as one model call per op (one call per request when
/// the batch call fails, so a failure is told to its request only).
fn process(
    model: &WorkerModel,
    cfg: &Config,
    entries: &[Entry],
    recorded: &HashMap<String, String>,
) -> Vec<Answer> {
    let mut answers = Vec::with_capacity(entries.len());
    let mut runnable: Vec<Request> = Vec::new();
    let refuse = |head: Head, error: String| Answer {
        response: protocol::error_response(head.id.as_deref(), &error),
        head,
        error: Some(error),
    };
    for e in entries {
        let limits = protocol::Limits {
            max_texts: cfg.max_texts,
            max_new_tokens: cfg.max_new_tokens,
        };
        let parsed = protocol::parse_entry(&e.id, &cfg.stream, &e.fields, limits);
        let head = match &parsed {
            Ok(r) => r.head.clone(),
            Err(r) => r.head.clone(),
        };
        if let Some(response) = recorded.get(&e.id) {
            answers.push(Answer {
                head,
                response: response.clone(),
                error: None,
            });
            continue;
        }
        if e.deliveries > cfg.max_deliveries {
            answers.push(refuse(
                head,
                format!(
                    "the request was delivered {} times, more than --max-deliveries ({}): the \
                     workers that took it stopped before answering it",
                    e.deliveries, cfg.max_deliveries
                ),
            ));
            continue;
        }
        match parsed {
            Ok(r) => match model.refuses(r.op) {
                Some(why) => answers.push(refuse(r.head, why)),
                None => runnable.push(r),
            },
            Err(r) => answers.push(refuse(r.head, r.error)),
        }
    }
    for op in Op::ALL {
        let requests: Vec<&Request> = runnable.iter().filter(|r| r.op == op).collect();
        if requests.is_empty() {
            continue;
        }
        let inputs: Vec<&Input> = requests.iter().map(|r| &r.input).collect();
        if op == Op::Generate {
            // Each sequence succeeds or fails on its own (they run concurrently in the queue).
            for (r, result) in requests.iter().zip(model.generate(&inputs)) {
                answers.push(match result {
                    Ok(v) => Answer {
                        head: r.head.clone(),
                        response: protocol::ok_response(&r.id, v),
                        error: None,
                    },
                    Err(e) => refuse(r.head.clone(), e),
                });
            }
            continue;
        }
        match model.run(op, &inputs, cfg.forward_batch) {
            Ok(results) => {
                for (r, result) in requests.iter().zip(results) {
                    answers.push(Answer {
                        head: r.head.clone(),
                        response: protocol::ok_response(&r.id, result),
                        error: None,
                    });
                }
            }
            Err(_) if requests.len() > 1 => {
                for r in requests {
                    answers.push(match model.run(op, &[&r.input], cfg.forward_batch) {
                        Ok(mut one) => Answer {
                            head: r.head.clone(),
                            response: protocol::ok_response(
                                &r.id,
                                one.pop().unwrap_or(serde_json::Value::Null),
                            ),
                            error: None,
                        },
                        Err(e) => refuse(r.head.clone(), format!("the model failed: {e}")),
                    });
                }
            }
            Err(e) => {
                for r in requests {
                    answers.push(refuse(r.head.clone(), format!("the model failed: {e}")));
                }
            }
        }
    }
    answers
}

/// What the script did for one answer.
struct Delivered {
    answered: bool,
    skipped: Vec<&'static str>,
}

fn deliver(
    conn: &mut Connection,
    cfg: &Config,
    script: &redis::Script,
    a: &Answer,
) -> RedisResult<Delivered> {
    let result_key = a
        .head
        .id
        .as_deref()
        .map(|id| protocol::result_key(&cfg.stream, id));
    // Unused key slots repeat a key the script touches anyway.
    let placeholder = result_key.clone().unwrap_or_else(|| cfg.stream.clone());
    let flag = |b: bool| if b { "1" } else { "0" };
    let (answered, skipped_stream, skipped_key): (i64, i64, i64) = script
        .key(&cfg.stream)
        .key(&placeholder)
        .key(a.head.reply.stream.as_ref().unwrap_or(&placeholder))
        .key(a.head.reply.key.as_ref().unwrap_or(&placeholder))
        .arg(&cfg.group)
        .arg(&a.head.entry)
        .arg(&a.response)
        .arg(cfg.result_ttl.as_secs())
        .arg(a.head.id.as_deref().unwrap_or(""))
        .arg(flag(result_key.is_some()))
        .arg(flag(a.head.reply.stream.is_some()))
        .arg(flag(a.head.reply.key.is_some()))
        .invoke(conn)?;
    let mut skipped = Vec::new();
    if skipped_stream == 1 {
        skipped.push("`reply_to` names a key that is not a stream");
    }
    if skipped_key == 1 {
        skipped.push("`reply_key` names a key that is not a string");
    }
    Ok(Delivered {
        answered: answered == 1,
        skipped,
    })
}

/// Serves `model` on the stream until `stop` is set (a batch in flight is finished: answered
/// and acknowledged first), or until Redis has failed for longer than `give_up_after`.
/// `on_event` hears about connections, batches, refusals and retries.
pub fn run(
    model: &WorkerModel,
    cfg: &Config,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> Result<Summary, WorkerError> {
    cfg.validate()?;
    let client = redis::Client::open(cfg.redis_url.as_str()).map_err(|cause| WorkerError::Url {
        url: cfg.redis_url.clone(),
        cause,
    })?;
    let mut link = Link {
        client,
        conn: None,
        group_ready: false,
    };
    let mut backoff = Backoff {
        first_failure: None,
        attempt: 0,
    };
    let mut reader = Reader {
        own_history: true,
        cursor: "0-0".into(),
    };
    let script = redis::Script::new(ANSWER);
    let mut summary = Summary::default();
    let mut draining = false;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        if stopping && !reader.own_history {
            break;
        }
        let entries = match link.with(cfg, on_event, |c| reader.fetch(c, cfg, stopping)) {
            Ok(entries) => {
                backoff.reset();
                entries
            }
            Err(_) if stop.load(Ordering::SeqCst) && !draining => {
                // The stop signal interrupted a blocking read (EINTR): entries the server
                // delivered on it are in this consumer's pending list. Read them back and
                // answer them before exiting.
                draining = true;
                reader.own_history = true;
                continue;
            }
            Err(e) => {
                let stop = (!stop.load(Ordering::SeqCst)).then_some(stop);
                backoff.wait(&e, cfg, stop, on_event)?;
                continue;
            }
        };
        if entries.is_empty() {
            continue;
        }
        if let Some(pause) = cfg.pause_after_read {
            std::thread::sleep(pause);
        }
        // Only saves work (the answer script sends what is recorded anyway): on failure, run all.
        let known = link
            .with(cfg, on_event, |c| recorded(c, cfg, &entries))
            .unwrap_or_default();
        let answers = process(model, cfg, &entries, &known);
        let (mut errors, mut already) = (0, 0);
        for a in &answers {
            // The batch is answered whatever happens to a stop request: retry until Redis
            // takes it or the backoff gives up (the entry then stays pending for a claim).
            let delivered = loop {
                match link.with(cfg, on_event, |c| deliver(c, cfg, &script, a)) {
                    Ok(d) => break d,
                    Err(e) => backoff.wait(&e, cfg, None, on_event)?,
                }
            };
            backoff.reset();
            if !delivered.answered {
                already += 1;
                continue;
            }
            for reason in delivered.skipped {
                on_event(Event::Undeliverable {
                    entry: a.head.entry.clone(),
                    reason: reason.into(),
                });
            }
            if let Some(error) = &a.error {
                errors += 1;
                on_event(Event::Refused {
                    entry: a.head.entry.clone(),
                    id: a.head.id.clone(),
                    error: error.clone(),
                });
            }
        }
        summary.batches += 1;
        summary.answered += entries.len() as u64;
        summary.errors += errors as u64;
        on_event(Event::Batch {
            entries: entries.len(),
            recovered: entries.iter().filter(|e| e.recovered).count(),
            errors,
            already_answered: already,
        });
    }
    on_event(Event::Stopped);
    Ok(summary)
}
