//! Text generation with a decoder (GPT-2, Llama, Mistral, Qwen2, Qwen3): a model folder loaded
//! once (`Send + Sync`), then any number of sequences generated from it, each with its own
//! preallocated [`KvCache`]: one prefill pass over the prompt, then one decode step per new
//! token, every token handed to a callback as soon as it is chosen.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use serde::Deserialize;
use serde_json::Value;
use tokenizers::Tokenizer;
use torchless_models::{CausalLm, KvCache, Logits};

use crate::device::{available_bytes, device_name};
use crate::error::{safe_message, Error, Result};
use crate::folder::{self, read_json};
use crate::registry::{LoadOptions, Source, Task};
use crate::sampling::{Sampler, SamplerConfig};

/// `model_type`s [`TextGenerator`] loads (the registry's text generators).
pub fn model_types() -> Vec<&'static str> {
    crate::registry::model_types(Task::Generate)
}

/// What a generation call does.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// At most this many new tokens. Any value is accepted: generation also ends when the
    /// model's positions are used up ([`StopReason::ContextFull`]), and only that many
    /// positions are ever allocated.
    pub max_new_tokens: usize,
    /// How each token is chosen.
    pub sampler: SamplerConfig,
    /// Stop at one of the model's end-of-sequence ids (`generation_config.json`, else
    /// `config.json`); the stop token is included in the output, as `generate()` does.
    pub stop_at_eos: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 32,
            sampler: SamplerConfig::default(),
            stop_at_eos: true,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-sequence token was produced.
    Eos,
    /// `max_new_tokens` were produced.
    MaxTokens,
    /// The callback asked to stop.
    Callback,
    /// The model's position limit was reached before `max_new_tokens`.
    ContextFull,
}

impl StopReason {
    /// A short lowercase name (`eos`, `max_tokens`, `callback`, `context_full`).
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::MaxTokens => "max_tokens",
            StopReason::Callback => "callback",
            StopReason::ContextFull => "context_full",
        }
    }
}

/// The result of one generation call.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The new token ids, in order.
    pub new_ids: Vec<u32>,
    /// The logits that chose the first new token (the prompt's last position, before any
    /// repetition penalty or warping).
    pub first_step_logits: Vec<f32>,
    /// Why it ended.
    pub stop: StopReason,
    /// Seconds spent in the prefill pass (prompt) and in the decode steps.
    pub prefill_seconds: f64,
    /// Seconds spent in the decode steps (every new token after the first).
    pub decode_seconds: f64,
}

/// The end-of-sequence ids of `generation_config.json` / `config.json` (an int or a list).
#[derive(Debug, Default, Deserialize)]
struct EosField {
    #[serde(default)]
    eos_token_id: Option<Value>,
}

fn eos_ids(v: &Option<Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .into_iter()
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_u64)
            .filter_map(|x| u32::try_from(x).ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// A loaded decoder, its tokenizer (when the folder has one) and its stop ids.
pub struct TextGenerator {
    model: Box<dyn CausalLm>,
    tokenizer: Option<Tokenizer>,
    eos: Vec<u32>,
    model_type: String,
    name: String,
}

impl TextGenerator {
    /// Loads a model folder: `config.json` (a `model_type` of [`model_types`]), the weights
    /// (`model.safetensors`, a shard index, or `pytorch_model.bin` converted in memory),
    /// `tokenizer.json` when present, and the end-of-sequence ids of `generation_config.json`
    /// (else `config.json`).
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let source = Source::open(dir, Task::Generate, opts)?;
        let config_path = source.config_path.clone();
        let kind = source.resolved.model_type.to_string();
        let model = source.decoder()?;
        let mut eos = match folder::member(dir, "generation_config.json")? {
            Some(p) => eos_ids(&read_json::<EosField>(&p)?.eos_token_id),
            None => Vec::new(),
        };
        if eos.is_empty() {
            eos = eos_ids(&read_json::<EosField>(&config_path)?.eos_token_id);
        }
        let tokenizer = match folder::member(dir, "tokenizer.json")? {
            Some(p) => Some(Tokenizer::from_file(&p).map_err(|e| {
                Error::Tokenizer(format!("{}: {}", p.display(), safe_message(&e.to_string())))
            })?),
            None => None,
        };
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(TextGenerator {
            model,
            tokenizer,
            eos,
            model_type: kind,
            name,
        })
    }

    /// The folder's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `config.json`'s `model_type`.
    pub fn model_type(&self) -> &str {
        &self.model_type
    }

    /// The model (its geometry, device and dtype; a raw forward pass).
    pub fn model(&self) -> &dyn CausalLm {
        self.model.as_ref()
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        self.model.device()
    }

    /// The end-of-sequence ids generation stops at.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos
    }

    /// The folder's tokenizer, if it has a `tokenizer.json`.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    fn need_tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| {
            Error::Tokenizer(format!(
                "model folder {} has no tokenizer.json: pass token ids instead of text",
                self.name
            ))
        })
    }

    /// Token ids of `text`, with the special tokens the tokenizer adds (as
    /// `tokenizer(text)` in `transformers`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .need_tokenizer()?
            .encode(text, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.need_tokenizer()?
            .decode(ids, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Generates from `prompt_ids`. `on_token` receives each new id as soon as it is chosen
    /// and returns `false` to stop. The cache is sized once, up front, for the prompt plus
    /// `max_new_tokens`, capped at the model's positions, after checking that it fits in the
    /// device's free memory ([`Error::KvCacheTooLarge`] otherwise); a `max_new_tokens` beyond
    /// the positions left simply generates until they are used up
    /// ([`StopReason::ContextFull`]).
    pub fn generate(
        &self,
        prompt_ids: &[u32],
        opts: &GenerateOptions,
        mut on_token: impl FnMut(u32) -> bool,
    ) -> Result<Generation> {
        let mut seq = match self.begin(prompt_ids, opts)? {
            Begun::Done(g) => return Ok(g),
            Begun::Running(seq) => seq,
        };
        loop {
            let id = seq.choose()?;
            let keep_going = on_token(id);
            if let Some(stop) = self.stop_after(&seq, id, keep_going) {
                return Ok(seq.finish(stop));
            }
            self.advance(&mut seq)?;
        }
    }

    /// Starts a sequence: checks the prompt and the options, allocates its cache (see
    /// [`TextGenerator::generate`]) and runs the prefill pass, leaving the logits the first new
    /// token is chosen from. `max_new_tokens == 0` is done at once.
    pub(crate) fn begin(&self, prompt_ids: &[u32], opts: &GenerateOptions) -> Result<Begun> {
        let max_pos = self.model.shape().max_positions;
        if prompt_ids.is_empty() {
            return Err(Error::Option("the prompt has no tokens".into()));
        }
        if prompt_ids.len() > max_pos {
            return Err(Error::Option(format!(
                "the prompt's {} tokens exceed the model's {max_pos} positions",
                prompt_ids.len()
            )));
        }
        let vocab = self.model.shape().vocab_size;
        if let Some(bad) = prompt_ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::Option(format!(
                "prompt token id {bad} is outside the model's vocabulary of {vocab}"
            )));
        }
        let sampler = Sampler::new(opts.sampler.clone())?;
        if opts.max_new_tokens == 0 {
            return Ok(Begun::Done(Generation {
                new_ids: Vec::new(),
                first_step_logits: Vec::new(),
                stop: StopReason::MaxTokens,
                prefill_seconds: 0.0,
                decode_seconds: 0.0,
            }));
        }
        let capacity = cache_capacity(prompt_ids.len(), opts.max_new_tokens, max_pos);
        // The token chosen at the last cached position is never fed back: at most
        // `capacity - prompt + 1` new tokens.
        let most_new = opts.max_new_tokens.min(capacity - prompt_ids.len() + 1);
        let mut cache = self.new_cache(capacity)?;
        let mut history = Vec::new();
        let mut new_ids = Vec::new();
        let reserve_failed = |what: &str| {
            Error::Option(format!(
                "cannot reserve memory for {what} of {capacity} positions"
            ))
        };
        history
            .try_reserve_exact(prompt_ids.len() + most_new)
            .map_err(|_| reserve_failed("the token history"))?;
        new_ids
            .try_reserve_exact(most_new)
            .map_err(|_| reserve_failed("the new tokens"))?;
        history.extend_from_slice(prompt_ids);
        let t0 = Instant::now();
        let logits = self.step(prompt_ids, &mut cache)?;
        let prefill_seconds = t0.elapsed().as_secs_f64();
        Ok(Begun::Running(Box::new(Sequence {
            max_new_tokens: opts.max_new_tokens,
            stop_at_eos: opts.stop_at_eos,
            sampler,
            cache,
            history,
            new_ids,
            first_step_logits: logits.clone(),
            logits,
            prefill_seconds,
            decode_start: Instant::now(),
        })))
    }

    /// Why `seq` ends after its caller heard about the token `id` it just chose (`keep_going`:
    /// the caller's answer), or `None` to go on.
    pub(crate) fn stop_after(
        &self,
        seq: &Sequence,
        id: u32,
        keep_going: bool,
    ) -> Option<StopReason> {
        if seq.stop_at_eos && self.eos.contains(&id) {
            Some(StopReason::Eos)
        } else if !keep_going {
            Some(StopReason::Callback)
        } else if seq.new_ids.len() >= seq.max_new_tokens {
            Some(StopReason::MaxTokens)
        } else if seq.cache.len() >= seq.cache.capacity() {
            Some(StopReason::ContextFull)
        } else {
            None
        }
    }

    /// Whether `seq`'s next step must run the whole sequence again: it (the new token
    /// included) just went past the length at which the model's rotary scaling changes
    /// ([`CausalLm::recompute_past`]), as transformers does.
    pub(crate) fn needs_recompute(&self, seq: &Sequence) -> bool {
        matches!(
            self.model.recompute_past(),
            Some(limit) if seq.history.len() > limit && seq.cache.len() <= limit
        )
    }

    /// One step of `seq` alone: its last chosen token through the model (or, when
    /// [`TextGenerator::needs_recompute`], every token again), leaving the next logits.
    pub(crate) fn advance(&self, seq: &mut Sequence) -> Result<()> {
        seq.logits = if self.needs_recompute(seq) {
            seq.cache.clear();
            self.step(&seq.history, &mut seq.cache)?
        } else {
            let id = seq.last_id()?;
            self.step(&[id], &mut seq.cache)?
        };
        Ok(())
    }

    /// One decode step for several sequences at once ([`CausalLm::decode_batch`]): each one's
    /// last chosen token, each at its own position; leaves each one's next logits. None of
    /// them may need a recompute. A lone sequence takes [`TextGenerator::advance`]'s path.
    pub(crate) fn advance_batch(&self, seqs: &mut [&mut Sequence]) -> Result<()> {
        if let [one] = seqs {
            return self.advance(one);
        }
        let ids = seqs
            .iter()
            .map(|s| s.last_id())
            .collect::<Result<Vec<_>>>()?;
        let mut caches: Vec<&mut KvCache> = seqs.iter_mut().map(|s| &mut s.cache).collect();
        let logits = self.model.decode_batch(&ids, &mut caches)?;
        let rows = logits.to_device(&Device::Cpu)?.to_vec2::<f32>()?;
        if rows.len() != seqs.len() {
            return Err(Error::Option(format!(
                "decode_batch returned {} rows for {} sequences",
                rows.len(),
                seqs.len()
            )));
        }
        for (s, row) in seqs.iter_mut().zip(rows) {
            s.logits = row;
        }
        Ok(())
    }

    /// A cache of `capacity` positions, once its size is checked against the device's free
    /// memory.
    fn new_cache(&self, capacity: usize) -> Result<KvCache> {
        let available = available_bytes(self.device());
        let needed = self.model.cache_nbytes(capacity);
        if let Some(available) = available {
            let needed = needed.unwrap_or(u64::MAX);
            if needed > available {
                return Err(Error::KvCacheTooLarge {
                    positions: capacity,
                    needed,
                    available,
                    device: device_name(self.device()),
                });
            }
        }
        Ok(self.model.new_cache(capacity)?)
    }

    /// One forward pass; the last position's logits as f32 on the CPU.
    fn step(&self, ids: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let l = self.model.forward(ids, cache, Logits::Last)?;
        Ok(l.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?)
    }

    /// The logits of every prompt position, `[T][vocab]` (for parity checks).
    pub fn prompt_logits(&self, prompt_ids: &[u32]) -> Result<Vec<Vec<f32>>> {
        let mut cache = self.new_cache(prompt_ids.len().max(1))?;
        let l = self.model.forward(prompt_ids, &mut cache, Logits::All)?;
        Ok(l.to_device(&Device::Cpu)?.to_vec2::<f32>()?)
    }
}

/// A sequence in flight: its options, sampler, cache, tokens and timings. Single-sequence
/// [`TextGenerator::generate`] and the batching scheduler drive it through the same steps:
/// [`TextGenerator::begin`], then [`Sequence::choose`] / [`TextGenerator::stop_after`] /
/// [`TextGenerator::advance`] (or [`TextGenerator::advance_batch`]) until it stops, then
/// [`Sequence::finish`].
pub(crate) struct Sequence {
    max_new_tokens: usize,
    stop_at_eos: bool,
    sampler: Sampler,
    cache: KvCache,
    /// The prompt and every chosen token (the repetition penalty's input).
    history: Vec<u32>,
    new_ids: Vec<u32>,
    /// The logits the next token is chosen from.
    logits: Vec<f32>,
    first_step_logits: Vec<f32>,
    prefill_seconds: f64,
    decode_start: Instant,
}

/// What [`TextGenerator::begin`] leaves: a sequence to run, or one already done.
pub(crate) enum Begun {
    /// Nothing to generate (`max_new_tokens == 0`).
    Done(Generation),
    /// Prefilled; its first token is next.
    Running(Box<Sequence>),
}

impl Sequence {
    /// Chooses the next token from the current logits and records it.
    pub(crate) fn choose(&mut self) -> Result<u32> {
        let id = self.sampler.next(&mut self.logits, &self.history)?;
        self.new_ids.push(id);
        self.history.push(id);
        Ok(id)
    }

    /// The last chosen token (the next step's input).
    fn last_id(&self) -> Result<u32> {
        self.new_ids
            .last()
            .copied()
            .ok_or_else(|| Error::Option("a decode step before any token was chosen".into()))
    }

    /// Positions in the cache.
    pub(crate) fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The result, ended for `stop`.
    pub(crate) fn finish(self, stop: StopReason) -> Generation {
        Generation {
            new_ids: self.new_ids,
            first_step_logits: self.first_step_logits,
            stop,
            prefill_seconds: self.prefill_seconds,
            decode_seconds: self.decode_start.elapsed().as_secs_f64(),
        }
    }
}

/// Positions a generation's cache holds: the prompt plus `max_new_tokens` (saturating),
/// capped at the model's positions. `prompt` is at most `max_pos`.
fn cache_capacity(prompt: usize, max_new_tokens: usize, max_pos: usize) -> usize {
    prompt.saturating_add(max_new_tokens).min(max_pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn generator_is_send_and_sync() {
        assert_send_sync::<TextGenerator>();
    }

    /// A decoder with a huge geometry and no weights: only its cache size matters.
    struct Huge(torchless_models::DecoderShape);

    impl CausalLm for Huge {
        fn shape(&self) -> &torchless_models::DecoderShape {
            &self.0
        }
        fn dtype(&self) -> candle_core::DType {
            candle_core::DType::F32
        }
        fn device(&self) -> &Device {
            &Device::Cpu
        }
        fn forward(
            &self,
            _: &[u32],
            _: &mut KvCache,
            _: Logits,
        ) -> candle_core::Result<candle_core::Tensor> {
            candle_core::bail!("no weights")
        }
    }

    #[test]
    fn a_cache_larger_than_free_memory_is_refused_before_allocating() {
        let Some(available) = available_bytes(&Device::Cpu) else {
            return; // no /proc/meminfo: nothing to check against
        };
        let positions = 1 << 20;
        let g = TextGenerator {
            model: Box::new(Huge(torchless_models::DecoderShape {
                layers: 4096,
                kv_heads: 64,
                head_dim: 128,
                vocab_size: 10,
                max_positions: positions,
            })),
            tokenizer: None,
            eos: Vec::new(),
            model_type: "huge".into(),
            name: "huge".into(),
        };
        let opts = GenerateOptions {
            max_new_tokens: usize::MAX,
            ..Default::default()
        };
        match g.generate(&[1, 2], &opts, |_| true) {
            Err(Error::KvCacheTooLarge {
                positions: p,
                needed,
                available: a,
                device,
            }) => {
                assert_eq!(p, positions);
                assert_eq!(needed, 4096 * 2 * 64 * (1 << 20) * 128 * 4);
                assert!(a <= available.saturating_mul(2), "{a} vs {available}");
                assert_eq!(device, "cpu");
            }
            Err(other) => panic!("expected KvCacheTooLarge, got {other}"),
            Ok(_) => panic!("a 256 TiB cache was allocated"),
        }
    }

    #[test]
    fn the_cache_is_capped_at_the_model_positions() {
        assert_eq!(cache_capacity(3, 10, 64), 13);
        assert_eq!(cache_capacity(3, 1_000_000_000_000, 64), 64);
        assert_eq!(cache_capacity(3, usize::MAX, 64), 64);
        assert_eq!(cache_capacity(64, usize::MAX, 64), 64);
    }

    #[test]
    fn eos_ids_accept_an_int_or_a_list() {
        assert_eq!(eos_ids(&Some(serde_json::json!(2))), vec![2]);
        assert_eq!(eos_ids(&Some(serde_json::json!([1, 7]))), vec![1, 7]);
        assert!(eos_ids(&Some(Value::Null)).is_empty());
        // Ids beyond u32 are dropped, not truncated onto another token.
        assert_eq!(
            eos_ids(&Some(serde_json::json!([4294967301u64, 3]))),
            vec![3]
        );
    }
}
