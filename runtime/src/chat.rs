//! Chat prompts and streamed text for decoders: the chat template of a model folder's
//! `tokenizer_config.json` rendered as `transformers`' `apply_chat_template` renders it, and
//! the text of a growing token sequence handed out in pieces that never split a character.
//!
//! Templates are Jinja, run by `minijinja` with the environment `transformers` builds in
//! `utils/chat_template_utils.py` (`_compile_jinja_template`): `trim_blocks` and
//! `lstrip_blocks` on, the trailing newline of the template dropped, loop controls, and the
//! globals `raise_exception`, `strftime_now`, `namespace` and `dict`, with its `tojson`
//! (Python's `json.dumps`, non-ASCII kept). Python's string and dict methods (`.strip()`,
//! `.startswith()`, `.split()`, `.items()`, ...) come from `minijinja-contrib`'s `pycompat`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::value::{Kwargs, Serde, Value, ValueKind};
use minijinja::{Environment, ErrorKind};
use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ... (passed to the template as is).
    pub role: String,
    /// The message's text.
    pub content: String,
}

/// The special tokens `transformers` hands a chat template (`special_tokens_map`).
const SPECIAL_TOKENS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// The file names a template comes from, in the order `transformers` prefers them.
const TEMPLATE_FILE: &str = "chat_template.jinja";
const CONFIG_FILE: &str = "tokenizer_config.json";

/// The name the compiled template has inside its environment.
const TEMPLATE_NAME: &str = "chat_template";

/// A model folder's chat template with the special tokens it refers to.
#[derive(Clone)]
pub struct ChatTemplate {
    source: String,
    /// The file the template was read from (named in every error).
    file: PathBuf,
    /// `bos_token`, `eos_token`, ... as `tokenizer_config.json` gives them.
    special_tokens: BTreeMap<String, String>,
    env: Arc<Environment<'static>>,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("file", &self.file)
            .field("special_tokens", &self.special_tokens)
            .field("source", &self.source)
            .finish()
    }
}

impl ChatTemplate {
    /// The chat template of `dir` (`tokenizer_config.json`'s `chat_template`, or
    /// `chat_template.jinja`), `None` when the folder has none.
    ///
    /// `chat_template.jinja` (written by `transformers` 5) wins over the config's entry, as in
    /// `transformers`; a config holding a list of named templates gives its `default` one.
    pub fn from_folder(dir: &Path) -> Result<Option<ChatTemplate>> {
        let config_path = dir.join(CONFIG_FILE);
        let config = match std::fs::read_to_string(&config_path) {
            Ok(text) => Some(
                serde_json::from_str::<serde_json::Value>(&text).map_err(|e| Error::Config {
                    file: config_path.clone(),
                    reason: format!("invalid JSON: {e}"),
                })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(cause) => {
                return Err(Error::Io {
                    path: config_path,
                    cause,
                })
            }
        };
        let jinja_path = dir.join(TEMPLATE_FILE);
        let (source, file) = match std::fs::read_to_string(&jinja_path) {
            Ok(text) => (text, jinja_path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match config.as_ref().map(|c| config_template(c, &config_path)) {
                    Some(Ok(Some(text))) => (text, config_path.clone()),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(None)) | None => return Ok(None),
                }
            }
            Err(cause) => {
                return Err(Error::Io {
                    path: jinja_path,
                    cause,
                })
            }
        };
        let special_tokens = match &config {
            Some(c) => special_tokens(c, &config_path)?,
            None => BTreeMap::new(),
        };
        Self::new(source, file, special_tokens).map(Some)
    }

    /// A template from its text, with the special tokens it may refer to (`bos_token`, ...);
    /// `file` names where it came from in errors.
    pub fn new(
        source: String,
        file: PathBuf,
        special_tokens: BTreeMap<String, String>,
    ) -> Result<ChatTemplate> {
        let env = environment(&source).map_err(|e| template_error(&file, &e))?;
        Ok(ChatTemplate {
            source,
            file,
            special_tokens,
            env: Arc::new(env),
        })
    }

    /// The template's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The special tokens the template sees (`bos_token`, `eos_token`, ...).
    pub fn special_tokens(&self) -> &BTreeMap<String, String> {
        &self.special_tokens
    }

    /// The prompt for `messages`, ending with the assistant's turn opened when
    /// `add_generation_prompt` is set.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, add_generation_prompt, &serde_json::Map::new())
    }

    /// As [`ChatTemplate::render`], with more variables for the template (`enable_thinking`,
    /// `date_string`, `tools`, ...), as `apply_chat_template(..., **kwargs)` passes them; they
    /// override the special tokens of the same name.
    pub fn render_with(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String> {
        let mut ctx: BTreeMap<String, Value> = self
            .special_tokens
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        ctx.insert("tools".into(), Value::from(()));
        ctx.insert("documents".into(), Value::from(()));
        for (k, v) in extra {
            ctx.insert(k.clone(), Value::from(Serde(v)));
        }
        ctx.insert("messages".into(), Value::from(Serde(messages)));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| template_error(&self.file, &e))?;
        template
            .render(Value::from(ctx))
            .map_err(|e| template_error(&self.file, &e))
    }
}

/// `chat_template` of a parsed `tokenizer_config.json`: a string, or a list of
/// `{name, template}` of which the `default` one is taken.
fn config_template(config: &serde_json::Value, file: &Path) -> Result<Option<String>> {
    let bad = |reason: String| Error::Config {
        file: file.to_path_buf(),
        reason,
    };
    match config.get("chat_template") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(serde_json::Value::Array(list)) => {
            let mut names = Vec::new();
            for entry in list {
                let name = entry.get("name").and_then(|n| n.as_str());
                let template = entry.get("template").and_then(|t| t.as_str());
                match (name, template) {
                    (Some("default"), Some(t)) => return Ok(Some(t.to_string())),
                    (Some(n), Some(_)) => names.push(n.to_string()),
                    _ => return Err(bad(
                        "`chat_template` list entries must be {\"name\": ..., \"template\": ...}"
                            .into(),
                    )),
                }
            }
            Err(bad(format!(
                "`chat_template` lists templates {names:?} but none named `default`"
            )))
        }
        Some(_) => Err(bad(
            "`chat_template` must be a string or a list of {name, template}".into(),
        )),
    }
}

/// The special tokens of a parsed `tokenizer_config.json` (strings, or `{"content": ...}`
/// objects as `AddedToken`s are saved).
fn special_tokens(config: &serde_json::Value, file: &Path) -> Result<BTreeMap<String, String>> {
    let mut tokens = BTreeMap::new();
    for key in SPECIAL_TOKENS {
        let text = match config.get(key) {
            None | Some(serde_json::Value::Null) => continue,
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => match v.get("content").and_then(|c| c.as_str()) {
                Some(s) => s.to_string(),
                None => {
                    return Err(Error::Config {
                        file: file.to_path_buf(),
                        reason: format!(
                            "`{key}` must be a string or an object with a `content` string"
                        ),
                    })
                }
            },
        };
        tokens.insert(key.to_string(), text);
    }
    Ok(tokens)
}

/// The environment `transformers` renders chat templates in, holding `source`.
fn environment(source: &str) -> std::result::Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()?,
    );
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    env.add_template_owned(TEMPLATE_NAME, source.to_string())?;
    Ok(env)
}

/// What a template's `raise_exception(message)` raised: told apart from other errors so the
/// message reaches the caller as the template wrote it.
#[derive(Debug)]
struct Raised(String);

impl fmt::Display for Raised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(
        minijinja::Error::new(ErrorKind::InvalidOperation, "raise_exception")
            .with_source(Raised(message)),
    )
}

/// The runtime error for a failed template, naming `file`: the template's own message for
/// `raise_exception`, else minijinja's error with its line.
fn template_error(file: &Path, e: &minijinja::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(Raised(message)) = err.downcast_ref::<Raised>() {
            return Error::Config {
                file: file.to_path_buf(),
                reason: format!("the chat template refused the messages: {message}"),
            };
        }
        source = err.source();
    }
    let line = e
        .line()
        .map(|l| format!(" (template line {l})"))
        .unwrap_or_default();
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    Error::Config {
        file: file.to_path_buf(),
        reason: format!("chat template: {}{detail}{line}", e.kind()),
    }
}

/// `strftime_now(format)`: the current time (UTC) formatted as Python's `strftime` does, for
/// the directives templates use (`%d %b %Y`, `%Y-%m-%d`, `%H:%M:%S`, `%A`, `%B`, ...).
fn strftime_now(format: &str) -> std::result::Result<String, minijinja::Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    strftime(format, secs)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// `format` applied to `secs` seconds after the Unix epoch (UTC).
fn strftime(format: &str, secs: u64) -> std::result::Result<String, minijinja::Error> {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let month_name = MONTHS[(month - 1) as usize];
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let weekday = WEEKDAYS[((days + 3) % 7) as usize];
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let day_of_year = {
        let before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334][(month - 1) as usize];
        before + day + i64::from(leap && month > 2)
    };
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(d) = chars.next() else {
            out.push('%');
            break;
        };
        match d {
            'Y' => out.push_str(&year.to_string()),
            'y' => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            'm' => out.push_str(&format!("{month:02}")),
            'd' => out.push_str(&format!("{day:02}")),
            '-' if chars.clone().next() == Some('d') => {
                chars.next();
                out.push_str(&day.to_string());
            }
            'e' => out.push_str(&format!("{day:2}")),
            'j' => out.push_str(&format!("{day_of_year:03}")),
            'b' | 'h' => out.push_str(&month_name[..3]),
            'B' => out.push_str(month_name),
            'a' => out.push_str(&weekday[..3]),
            'A' => out.push_str(weekday),
            'H' => out.push_str(&format!("{hour:02}")),
            'I' => out.push_str(&format!("{:02}", (hour + 11) % 12 + 1)),
            'p' => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            'M' => out.push_str(&format!("{minute:02}")),
            'S' => out.push_str(&format!("{second:02}")),
            'F' => out.push_str(&format!("{year}-{month:02}-{day:02}")),
            'T' => out.push_str(&format!("{hour:02}:{minute:02}:{second:02}")),
            '%' => out.push('%'),
            other => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: unsupported directive %{other}"),
                ))
            }
        }
    }
    Ok(out)
}

/// `tojson` as `transformers` overrides it: Python's `json.dumps(x, ensure_ascii=False,
/// indent=None, separators=None, sort_keys=False)`, not HTML-escaped.
fn tojson(value: &Value, kwargs: Kwargs) -> std::result::Result<String, minijinja::Error> {
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let indent: Option<Value> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match (v.as_i64(), v.as_str()) {
            (Some(n), _) => Some(" ".repeat(usize::try_from(n).unwrap_or(0))),
            (None, Some(s)) => Some(s.to_string()),
            _ => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be an integer or a string",
                ))
            }
        },
    };
    let (item_sep, key_sep) = match separators {
        None => (
            if indent.is_some() { "," } else { ", " }.to_string(),
            ": ".to_string(),
        ),
        Some(v) if v.is_none() => (
            if indent.is_some() { "," } else { ", " }.to_string(),
            ": ".to_string(),
        ),
        Some(v) => {
            let item = v.get_item(&Value::from(0))?;
            let key = v.get_item(&Value::from(1))?;
            match (item.as_str(), key.as_str()) {
                (Some(i), Some(k)) => (i.to_string(), k.to_string()),
                _ => {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be two strings",
                    ))
                }
            }
        }
    };
    let style = JsonStyle {
        ensure_ascii: ensure_ascii.unwrap_or(false),
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.unwrap_or(false),
    };
    let mut out = String::new();
    style.write(value, 0, &mut out)?;
    Ok(out)
}

/// Python `json.dumps` options.
struct JsonStyle {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

impl JsonStyle {
    fn newline(&self, depth: usize, out: &mut String) {
        if let Some(indent) = &self.indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(indent);
            }
        }
    }

    fn write(
        &self,
        v: &Value,
        depth: usize,
        out: &mut String,
    ) -> std::result::Result<(), minijinja::Error> {
        match v.kind() {
            ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number => {
                if v.is_integer() {
                    out.push_str(&v.to_string());
                } else {
                    let f = f64::try_from(v.clone()).map_err(|_| {
                        minijinja::Error::new(
                            ErrorKind::InvalidOperation,
                            "tojson: unsupported number",
                        )
                    })?;
                    if f.is_nan() {
                        out.push_str("NaN");
                    } else if f.is_infinite() {
                        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
                    } else if f.fract() == 0.0 && f.abs() < 1e16 {
                        out.push_str(&format!("{f:.1}"));
                    } else {
                        out.push_str(&f.to_string());
                    }
                }
            }
            ValueKind::String => self.write_str(v.as_str().unwrap_or_default(), out),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = v.try_iter()?.collect();
                if items.is_empty() {
                    out.push_str("[]");
                    return Ok(());
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(depth + 1, out);
                    self.write(item, depth + 1, out)?;
                }
                self.newline(depth, out);
                out.push(']');
            }
            ValueKind::Map => {
                let mut keys: Vec<Value> = v.try_iter()?.collect();
                if keys.is_empty() {
                    out.push_str("{}");
                    return Ok(());
                }
                if self.sort_keys {
                    keys.sort();
                }
                out.push('{');
                for (i, key) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(depth + 1, out);
                    match key.as_str() {
                        Some(s) => self.write_str(s, out),
                        None => {
                            out.push('"');
                            out.push_str(&key.to_string());
                            out.push('"');
                        }
                    }
                    out.push_str(&self.key_sep);
                    self.write(&v.get_item(key)?, depth + 1, out)?;
                }
                self.newline(depth, out);
                out.push('}');
            }
            other => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson: cannot serialize a value of type {other}"),
                ))
            }
        }
        Ok(())
    }

    fn write_str(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && (c as u32) > 0x7e) => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// The text of a sequence of new token ids, handed out as it grows: each [`TextStream::push`]
/// returns the text that became final with that token (empty while a character is still
/// incomplete), and the concatenation of every piece and [`TextStream::finish`] equals the
/// decoding of all the ids (special tokens left out).
///
/// As `transformers`' `TextStreamer` and TGI do, it decodes a short window of ids, not the
/// whole sequence: the ids from `prefix` (the start of the last piece handed out) to the end,
/// and hands out what that text adds to the window's already-read part (`prefix..read`).
/// Decoding the new ids alone would lose a SentencePiece `▁` word start (the decoder strips
/// the first token's leading space) and split multi-byte characters; the window keeps one
/// piece of context, and nothing is handed out while the text ends in U+FFFD (an incomplete
/// UTF-8 sequence of byte-level or byte-fallback tokens).
pub struct TextStream<'a> {
    tokenizer: &'a Tokenizer,
    /// The ids since `prefix` (earlier ones are dropped: the work per token is the window's).
    ids: Vec<u32>,
    /// Where the already-read ids end in `ids` (the start of the ids not handed out yet).
    read: usize,
}

impl<'a> TextStream<'a> {
    /// A stream decoding with `tokenizer` (special tokens left out).
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        TextStream {
            tokenizer,
            ids: Vec::new(),
            read: 0,
        }
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        if ids.is_empty() {
            return Ok(String::new());
        }
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// The text the unread ids add to the read ones; `None` while it ends in an incomplete
    /// character (unless `last`).
    fn pending(&self, last: bool) -> Result<Option<String>> {
        let prefix_text = self.decode(&self.ids[..self.read])?;
        let text = self.decode(&self.ids)?;
        if !last && (text.len() <= prefix_text.len() || text.ends_with('\u{FFFD}')) {
            return Ok(None);
        }
        // The window's text normally starts with the read part's; where a decoder rewrote it,
        // hand out what follows the common prefix.
        let common = if text.starts_with(&prefix_text) {
            prefix_text.len()
        } else {
            text.char_indices()
                .zip(prefix_text.chars())
                .find(|((_, a), b)| a != b)
                .map(|((i, _), _)| i)
                .unwrap_or(text.len().min(prefix_text.len()))
        };
        Ok(Some(text.get(common..).unwrap_or_default().to_string()))
    }

    /// Adds `id`; the text it completes.
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        match self.pending(false)? {
            Some(piece) => {
                // The window now starts at the ids just read.
                self.ids.drain(..self.read);
                self.read = self.ids.len();
                Ok(piece)
            }
            None => Ok(String::new()),
        }
    }

    /// The text not handed out yet (at the end of the sequence); the stream is empty after:
    /// pushing more ids after it starts a new text.
    pub fn finish(&mut self) -> Result<String> {
        let piece = if self.read == self.ids.len() {
            String::new()
        } else {
            self.pending(true)?.unwrap_or_default()
        };
        self.ids.clear();
        self.read = 0;
        Ok(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_template_is_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ChatTemplate>();
        send_sync::<TextStream<'static>>();
    }

    #[test]
    fn strftime_formats_a_known_date() {
        // 2024-07-26 13:05:09 UTC, a Friday.
        let secs = 1_722_000_000 - 1_722_000_000 % 86_400 + 13 * 3600 + 5 * 60 + 9;
        assert_eq!(
            strftime("%d %b %Y", secs).ok().as_deref(),
            Some("26 Jul 2024")
        );
        assert_eq!(
            strftime("%A %B %-d %j %H:%M:%S %y %%", secs)
                .ok()
                .as_deref(),
            Some("Friday July 26 208 13:05:09 24 %")
        );
        assert!(strftime("%Q", secs).is_err());
    }

    #[test]
    fn tojson_writes_python_json_dumps() {
        let env = environment("{{ x | tojson }}|{{ x | tojson(indent=2) }}").map(Arc::new);
        let Ok(env) = env else {
            panic!("template compiles")
        };
        let x: serde_json::Value = serde_json::json!({"b": [1, 2.0, "é\n\"<"], "a": null, "c": {}});
        let out = env
            .get_template(TEMPLATE_NAME)
            .and_then(|t| t.render(minijinja::context! { x => Value::from(Serde(&x)) }));
        assert_eq!(
            out.ok().as_deref(),
            Some(
                "{\"a\": null, \"b\": [1, 2.0, \"é\\n\\\"<\"], \"c\": {}}|{\n  \"a\": null,\n  \"b\": [\n    1,\n    2.0,\n    \"é\\n\\\"<\"\n  ],\n  \"c\": {}\n}"
            )
        );
    }

    #[test]
    fn text_stream_window_stays_short() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/chat/spm-byte-fallback/tokenizer.json");
        let tok = Tokenizer::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let text = "héllo 🙂 世界 and more words ".repeat(40);
        let ids = tok
            .encode(text.as_str(), false)
            .map(|e| e.get_ids().to_vec());
        let Ok(ids) = ids else { panic!("encodes") };
        assert!(ids.len() > 500);
        let mut stream = TextStream::new(&tok);
        let mut got = String::new();
        let mut widest = 0;
        for &id in &ids {
            got.push_str(&stream.push(id).unwrap_or_default());
            widest = widest.max(stream.ids.len());
        }
        got.push_str(&stream.finish().unwrap_or_default());
        assert_eq!(Some(got), tok.decode(&ids, true).ok());
        // The window holds the last piece and the ids of one incomplete character at most.
        assert!(widest <= 6, "window of {widest} ids");
    }
}
