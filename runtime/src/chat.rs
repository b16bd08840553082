//! Chat prompts and streamed text for decoders: the chat template of a model folder's
//! `tokenizer_config.json` rendered as `transformers`' `apply_chat_template` renders it, and
//! the text of a growing token sequence handed out in pieces that never split a character.

use std::path::Path;

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

/// A model folder's chat template with the special tokens it refers to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
}

impl ChatTemplate {
    /// The chat template of `dir` (`tokenizer_config.json`'s `chat_template`, or
    /// `chat_template.jinja`), `None` when the folder has none.
    pub fn from_folder(dir: &Path) -> Result<Option<ChatTemplate>> {
        let _ = dir;
        Err(Error::Option(
            "chat templates are not implemented yet".into(),
        ))
    }

    /// The template's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The prompt for `messages`, ending with the assistant's turn opened when
    /// `add_generation_prompt` is set.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let _ = (messages, add_generation_prompt);
        Err(Error::Option(
            "chat templates are not implemented yet".into(),
        ))
    }
}

/// The text of a sequence of new token ids, handed out as it grows: each [`TextStream::push`]
/// returns the text that became final with that token (empty while a character is still
/// incomplete), and the concatenation of every piece equals the decoding of all the ids.
pub struct TextStream<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<u32>,
    emitted: usize,
}

impl<'a> TextStream<'a> {
    /// A stream decoding with `tokenizer` (special tokens left out).
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        TextStream {
            tokenizer,
            ids: Vec::new(),
            emitted: 0,
        }
    }

    /// Adds `id`; the text it completes.
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = self
            .tokenizer
            .decode(&self.ids, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        if text.ends_with('\u{FFFD}') || text.len() < self.emitted {
            return Ok(String::new());
        }
        let piece = text.get(self.emitted..).unwrap_or_default().to_string();
        self.emitted = text.len();
        Ok(piece)
    }

    /// The text not handed out yet (at the end of the sequence).
    pub fn finish(&mut self) -> Result<String> {
        let text = self
            .tokenizer
            .decode(&self.ids, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let piece = text.get(self.emitted..).unwrap_or_default().to_string();
        self.emitted = text.len();
        Ok(piece)
    }
}
