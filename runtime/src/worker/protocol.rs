//! The worker's wire format: a request is one stream entry (fields `id`, `reply_to` or
//! `reply_key`, `op`, `input`), a response is one JSON object `{"id", "ok", "result"|"error"}`.
//! Parsing never fails as a whole: an entry that cannot run becomes a [`Refusal`] whose
//! message names the field at fault, so the worker can answer it and acknowledge it at once.

use std::collections::HashMap;

use redis::Value;
use serde::Deserialize;

use crate::error::safe_message;

/// The longest request id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// The prefix of the key a result is recorded under: `torchless:result:{stream}:{id}`.
pub const RESULT_PREFIX: &str = "torchless:result:";

/// What a request asks the model to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Sentence embeddings of a list of texts (a sentence encoder).
    Embed,
    /// Relevance scores of texts against a query (a cross-encoder).
    Rerank,
    /// Label scores of each text (a sequence classifier).
    Classify,
    /// A greedy continuation of a prompt (a causal language model).
    Generate,
}

impl Op {
    /// Every operation, in the order messages list them.
    pub const ALL: [Op; 4] = [Op::Embed, Op::Rerank, Op::Classify, Op::Generate];

    /// The name a request's `op` field carries.
    pub fn name(self) -> &'static str {
        match self {
            Op::Embed => "embed",
            Op::Rerank => "rerank",
            Op::Classify => "classify",
            Op::Generate => "generate",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == s)
    }
}

/// A request's `input`, checked against its op.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `embed` and `classify`: a JSON array of texts.
    Texts(Vec<String>),
    /// `rerank`: `{"query": "...", "texts": ["...", ...]}`.
    Rerank {
        /// The query every text is scored against.
        query: String,
        /// The texts (documents), scored in this order.
        texts: Vec<String>,
    },
    /// `generate`: `{"prompt": "...", "max_new_tokens": n}`.
    Generate {
        /// The prompt text (tokenized with the model's tokenizer).
        prompt: String,
        /// New tokens at most (default 32).
        max_new_tokens: usize,
    },
}

impl Input {
    /// How many texts the model runs for this input.
    pub fn len(&self) -> usize {
        match self {
            Input::Texts(t) | Input::Rerank { texts: t, .. } => t.len(),
            Input::Generate { .. } => 1,
        }
    }

    /// Whether the input holds no text.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a response goes: a stream it is added to, a key it is stored under, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyTo {
    /// `reply_to`: a stream the response is XADDed to (fields `id` and `result`).
    pub stream: Option<String>,
    /// `reply_key`: a key the response JSON is SET under, with the result TTL.
    pub key: Option<String>,
}

/// The parts of an entry known before its body is checked: who asked and where to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The stream entry's id (`1700000000000-0`).
    pub entry: String,
    /// The request id, when the entry has a valid one.
    pub id: Option<String>,
    /// Where the response goes.
    pub reply: ReplyTo,
}

/// A request the model can run.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The entry, request id and reply destination.
    pub head: Head,
    /// The request id (also in `head.id`).
    pub id: String,
    /// The operation.
    pub op: Op,
    /// Its input.
    pub input: Input,
}

/// An entry answered with an error and acknowledged at once (a poison request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The entry, request id (if any) and reply destination (if any).
    pub head: Head,
    /// What is wrong, naming the field.
    pub error: String,
}

/// The key a request's result is recorded under.
pub fn result_key(stream: &str, id: &str) -> String {
    format!("{RESULT_PREFIX}{stream}:{id}")
}

/// A success response: `{"id": .., "ok": true, "result": ..}`.
pub fn ok_response(id: &str, result: serde_json::Value) -> String {
    serde_json::json!({ "id": id, "ok": true, "result": result }).to_string()
}

/// An error response: `{"id": .. or null, "ok": false, "error": ".."}`.
pub fn error_response(id: Option<&str>, error: &str) -> String {
    serde_json::json!({ "id": id, "ok": false, "error": error }).to_string()
}

/// One field's value as text: `Ok(None)` when absent, an error naming it when not UTF-8.
fn field(fields: &HashMap<String, Value>, name: &str) -> Result<Option<String>, String> {
    let bytes = match fields.get(name) {
        None | Some(Value::Nil) => return Ok(None),
        Some(Value::BulkString(b)) => b.clone(),
        Some(Value::SimpleString(s)) => s.clone().into_bytes(),
        Some(Value::Int(i)) => i.to_string().into_bytes(),
        Some(other) => {
            return Err(format!(
                "field `{name}` is not a string (a {other:?} reply)"
            ))
        }
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| format!("field `{name}` is not UTF-8"))
}

/// The request id of an entry, when it has a valid one.
pub fn request_id(fields: &HashMap<String, Value>) -> Option<String> {
    field(fields, "id")
        .ok()
        .flatten()
        .filter(|id| !id.is_empty() && id.len() <= MAX_ID_BYTES)
}

/// A name field (`reply_to`, `reply_key`): present, non-empty.
fn name_field(fields: &HashMap<String, Value>, name: &str) -> Result<Option<String>, String> {
    match field(fields, name)? {
        Some(s) if s.is_empty() => Err(format!("field `{name}` is empty")),
        other => Ok(other),
    }
}

fn head(entry: &str, stream: &str, fields: &HashMap<String, Value>) -> (Head, Option<String>) {
    let mut head = Head {
        entry: entry.to_owned(),
        id: None,
        reply: ReplyTo::default(),
    };
    let mut errors: Vec<String> = Vec::new();
    let mut note = |e: String| errors.push(e);
    match field(fields, "id") {
        Ok(None) => note("missing field `id` (the request id)".into()),
        Ok(Some(id)) if id.is_empty() => note("field `id` is empty".into()),
        Ok(Some(id)) if id.len() > MAX_ID_BYTES => note(format!(
            "field `id` is {} bytes long, more than {MAX_ID_BYTES}",
            id.len()
        )),
        Ok(Some(id)) => head.id = Some(id),
        Err(e) => note(e),
    }
    match name_field(fields, "reply_to") {
        Ok(Some(s)) if s == stream => note(format!(
            "field `reply_to` names the request stream {stream:?} itself"
        )),
        Ok(s) => head.reply.stream = s,
        Err(e) => note(e),
    }
    match name_field(fields, "reply_key") {
        Ok(k) => head.reply.key = k,
        Err(e) => note(e),
    }
    if errors.is_empty() && head.reply.stream.is_none() && head.reply.key.is_none() {
        errors.push("missing field `reply_to` or `reply_key` (where the result goes)".into());
    }
    (head, errors.into_iter().next())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RerankInput {
    query: String,
    texts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateInput {
    prompt: String,
    #[serde(default = "default_new_tokens")]
    max_new_tokens: usize,
}

fn default_new_tokens() -> usize {
    32
}

/// Checks a request's `input` against its op. `limits`: texts per request, new tokens per
/// generation.
fn input(op: Op, text: &str, limits: Limits) -> Result<Input, String> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "field `input` is not JSON: {}",
            safe_message(&e.to_string())
        )
    })?;
    let input = match op {
        Op::Embed | Op::Classify => serde_json::from_value::<Vec<String>>(json)
            .map(Input::Texts)
            .map_err(|e| {
                format!(
                    "field `input`: op `{}` takes a JSON array of strings ({})",
                    op.name(),
                    safe_message(&e.to_string())
                )
            })?,
        Op::Rerank => serde_json::from_value::<RerankInput>(json)
            .map(|r| Input::Rerank {
                query: r.query,
                texts: r.texts,
            })
            .map_err(|e| {
                format!(
                    "field `input`: op `rerank` takes {{\"query\": string, \"texts\": [strings]}} ({})",
                    safe_message(&e.to_string())
                )
            })?,
        Op::Generate => {
            let g = serde_json::from_value::<GenerateInput>(json).map_err(|e| {
                format!(
                    "field `input`: op `generate` takes {{\"prompt\": string, \"max_new_tokens\": \
                     integer}} ({})",
                    safe_message(&e.to_string())
                )
            })?;
            if g.max_new_tokens > limits.max_new_tokens {
                return Err(format!(
                    "field `input`: max_new_tokens {} is more than the worker's \
                     --max-new-tokens ({})",
                    g.max_new_tokens, limits.max_new_tokens
                ));
            }
            Input::Generate {
                prompt: g.prompt,
                max_new_tokens: g.max_new_tokens,
            }
        }
    };
    let max_texts = limits.max_texts;
    if input.len() > max_texts {
        return Err(format!(
            "field `input` holds {} texts, more than the worker's --max-texts ({max_texts})",
            input.len()
        ));
    }
    Ok(input)
}

/// What one request may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Texts in one request.
    pub max_texts: usize,
    /// New tokens in one generation.
    pub max_new_tokens: usize,
}

/// Reads one stream entry of the request stream `stream`: a [`Request`], or a [`Refusal`]
/// naming the first field at fault.
pub fn parse_entry(
    entry: &str,
    stream: &str,
    fields: &HashMap<String, Value>,
    limits: Limits,
) -> Result<Request, Refusal> {
    let (head, error) = head(entry, stream, fields);
    let refuse = |head: Head, error: String| Err(Refusal { head, error });
    if let Some(error) = error {
        return refuse(head, error);
    }
    let op = match field(fields, "op") {
        Ok(None) => {
            return refuse(
                head,
                "missing field `op` (embed, rerank, classify or generate)".into(),
            )
        }
        Ok(Some(s)) => match Op::parse(&s) {
            Some(op) => op,
            None => {
                return refuse(
                    head,
                    format!(
                        "field `op`: unknown operation {} (the worker runs embed, rerank, \
                         classify or generate)",
                        crate::error::shown(&s)
                    ),
                )
            }
        },
        Err(e) => return refuse(head, e),
    };
    let text = match field(fields, "input") {
        Ok(Some(t)) => t,
        Ok(None) => {
            return refuse(
                head,
                format!("missing field `input` (JSON) for op `{}`", op.name()),
            )
        }
        Err(e) => return refuse(head, e),
    };
    match input(op, &text, limits) {
        Ok(input) => {
            let Some(id) = head.id.clone() else {
                return refuse(head, "missing field `id` (the request id)".into());
            };
            Ok(Request {
                head,
                id,
                op,
                input,
            })
        }
        Err(e) => refuse(head, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_texts: 8,
        max_new_tokens: 16,
    };

    fn entry(pairs: &[(&str, &str)]) -> HashMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::BulkString(v.as_bytes().to_vec())))
            .collect()
    }

    fn refusal(pairs: &[(&str, &str)]) -> Refusal {
        parse_entry("1-0", "requests", &entry(pairs), LIMITS).unwrap_err()
    }

    #[test]
    fn a_valid_rerank_request_is_read() {
        let r = parse_entry(
            "1-0",
            "requests",
            &entry(&[
                ("id", "r1"),
                ("reply_to", "replies"),
                ("op", "rerank"),
                ("input", r#"{"query": "q", "texts": ["a", ""]}"#),
            ]),
            LIMITS,
        )
        .unwrap();
        assert_eq!(r.id, "r1");
        assert_eq!(r.op, Op::Rerank);
        assert_eq!(r.head.reply.stream.as_deref(), Some("replies"));
        assert_eq!(
            r.input,
            Input::Rerank {
                query: "q".into(),
                texts: vec!["a".into(), "".into()]
            }
        );
    }

    #[test]
    fn every_refusal_names_the_field_and_keeps_the_destination() {
        let e = refusal(&[("reply_to", "out"), ("op", "embed"), ("input", "[]")]);
        assert_eq!(e.error, "missing field `id` (the request id)");
        assert_eq!(e.head.reply.stream.as_deref(), Some("out"));
        let e = refusal(&[("id", "a"), ("op", "embed"), ("input", "[]")]);
        assert_eq!(
            e.error,
            "missing field `reply_to` or `reply_key` (where the result goes)"
        );
        let e = refusal(&[("id", "a"), ("reply_key", "k"), ("input", "[]")]);
        assert_eq!(
            e.error,
            "missing field `op` (embed, rerank, classify or generate)"
        );
        let e = refusal(&[
            ("id", "a"),
            ("reply_key", "k"),
            ("op", "generate"),
            ("input", r#"{"prompt": "p", "max_new_tokens": 17}"#),
        ]);
        assert_eq!(
            e.error,
            "field `input`: max_new_tokens 17 is more than the worker's --max-new-tokens (16)"
        );
        assert_eq!(e.head.id.as_deref(), Some("a"));
        let e = refusal(&[("id", "a"), ("reply_key", "k"), ("op", "fly")]);
        assert!(e.error.starts_with("field `op`: unknown operation \"fly\""));
        let e = refusal(&[("id", "a"), ("reply_key", "k"), ("op", "embed")]);
        assert_eq!(e.error, "missing field `input` (JSON) for op `embed`");
        let e = refusal(&[
            ("id", "a"),
            ("reply_key", "k"),
            ("op", "embed"),
            ("input", "[1"),
        ]);
        assert!(
            e.error.starts_with("field `input` is not JSON"),
            "{}",
            e.error
        );
        let e = refusal(&[
            ("id", "a"),
            ("reply_key", "k"),
            ("op", "rerank"),
            ("input", r#"["x"]"#),
        ]);
        assert!(e.error.starts_with("field `input`: op `rerank` takes"));
        let e = refusal(&[
            ("id", "a"),
            ("reply_key", "k"),
            ("op", "classify"),
            ("input", r#"["1","2","3","4","5","6","7","8","9"]"#),
        ]);
        assert_eq!(
            e.error,
            "field `input` holds 9 texts, more than the worker's --max-texts (8)"
        );
        let e = refusal(&[
            ("id", "a"),
            ("reply_to", "requests"),
            ("op", "embed"),
            ("input", "[]"),
        ]);
        assert!(e.error.contains("names the request stream"));
        let mut bad = entry(&[("reply_key", "k"), ("op", "embed"), ("input", "[]")]);
        bad.insert("id".into(), Value::BulkString(vec![0xff, 0xfe]));
        let e = parse_entry("1-0", "requests", &bad, LIMITS).unwrap_err();
        assert_eq!(e.error, "field `id` is not UTF-8");
    }

    #[test]
    fn responses_are_json_objects() {
        let ok: serde_json::Value =
            serde_json::from_str(&ok_response("x", serde_json::json!([1.5]))).unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"id": "x", "ok": true, "result": [1.5]})
        );
        let err: serde_json::Value =
            serde_json::from_str(&error_response(None, "missing field `id`")).unwrap();
        assert_eq!(
            err,
            serde_json::json!({"id": null, "ok": false, "error": "missing field `id`"})
        );
        assert_eq!(result_key("s", "r1"), "torchless:result:s:r1");
    }
}
