//! Sentence embeddings: a BERT-family encoder, its `tokenizer.json`, and the pooling and
//! normalisation a sentence-transformers folder declares — the same pipeline as
//! `SentenceTransformer.encode`. Loaded once, `Send + Sync`, callable from many threads.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};
use torchless_models::TextEncoder;

use crate::error::{safe_message, Error, Result};
use crate::folder::{self, PipelineConfig, PoolingMode};
use crate::registry::{LoadOptions, Source, Task};

/// One tokenized batch, right-padded.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Token ids, `[B][T]`.
    pub input_ids: Vec<Vec<u32>>,
    /// Token type ids, `[B][T]`.
    pub token_type_ids: Vec<Vec<u32>>,
    /// Real tokens per row.
    pub lengths: Vec<u32>,
}

/// A sentence-embedding model.
pub struct SentenceEncoder {
    model: Box<dyn TextEncoder>,
    tokenizer: Tokenizer,
    pipeline: PipelineConfig,
    name: String,
    device: Device,
}

impl SentenceEncoder {
    /// Loads a model folder: `config.json` (a BERT-family `model_type`), the weights
    /// (`model.safetensors`, a shard index, or `pytorch_model.bin` converted in memory),
    /// `tokenizer.json`, and the sentence-transformers files when present.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let source = Source::open(dir, Task::Embed, opts)?;
        let model = source.encoder()?;
        let pipeline = folder::pipeline(dir)?;
        let max = model.max_positions();
        let tokenizer = load_tokenizer(dir, pipeline.max_seq_length.unwrap_or(max).min(max))?;
        let device = source.device.clone();
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(SentenceEncoder {
            model,
            tokenizer,
            pipeline,
            name,
            device,
        })
    }

    /// The folder's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Embedding size.
    pub fn dim(&self) -> usize {
        self.model.hidden_size() * self.pipeline.pooling.len()
    }

    /// The longest input in tokens (longer ones are truncated).
    pub fn max_tokens(&self) -> usize {
        self.tokenizer
            .get_truncation()
            .map_or(self.model.max_positions(), |t| t.max_length)
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Tokenizes texts (with special tokens, truncated) into one right-padded batch.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Batch> {
        let encs = self.encode(texts)?;
        Ok(padded(&encs.iter().collect::<Vec<_>>()))
    }

    /// Each text's tokens (with special tokens, truncated), unpadded.
    fn encode(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        self.tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// The encoder's last hidden state for a batch: `[B, T, H]` as f32 rows on the CPU.
    pub fn hidden_states(&self, batch: &Batch) -> Result<Vec<Vec<Vec<f32>>>> {
        let h = self.forward(batch)?;
        Ok(h.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.to_vec3()?)
    }

    fn forward(&self, batch: &Batch) -> Result<Tensor> {
        let b = batch.input_ids.len();
        let t = batch.input_ids.first().map_or(0, Vec::len);
        let flat = |v: &[Vec<u32>]| v.iter().flatten().copied().collect::<Vec<u32>>();
        let ids = Tensor::from_vec(flat(&batch.input_ids), (b, t), &self.device)?;
        let types = Tensor::from_vec(flat(&batch.token_type_ids), (b, t), &self.device)?;
        Ok(self.model.forward(&ids, Some(&types), &batch.lengths)?)
    }

    /// Embeds texts, `batch_size` at a time; results in input order. Each text's embedding
    /// does not depend on its batch. Texts are tokenized once, then one of two routes:
    ///
    /// - **unpadded** when the model runs packed batches ([`TextEncoder::runs_packed`]: the
    ///   BERT-layer families on the CPU): each batch's sequences go back to back in one token
    ///   dimension, so a batch costs its real tokens, whatever its mix of lengths; input order.
    /// - **padded** otherwise: texts grouped by token count first (longest first, as
    ///   sentence-transformers sorts before batching), so a batch pads to lengths close to its
    ///   own instead of the longest text of an input-order slice.
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let batch_size = batch_size.max(1);
        let encs = self.encode(texts)?;
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        if self.model.runs_packed() {
            for (c, chunk) in encs.chunks(batch_size).enumerate() {
                let pooled = self.embed_packed(chunk)?;
                for (j, e) in pooled.into_iter().enumerate() {
                    out[c * batch_size + j] = e;
                }
            }
            return Ok(out);
        }
        let mut order: Vec<usize> = (0..texts.len()).collect();
        if texts.len() > batch_size {
            // Stable: equal lengths keep input order.
            order.sort_by_key(|&i| std::cmp::Reverse(encs[i].get_ids().len()));
        }
        for chunk in order.chunks(batch_size) {
            let batch = padded(&chunk.iter().map(|&i| &encs[i]).collect::<Vec<_>>());
            let h = self.hidden_states(&batch)?;
            for ((rows, &n), &i) in h.iter().zip(&batch.lengths).zip(chunk) {
                out[i] = self.pool(&rows[..n as usize]);
            }
        }
        Ok(out)
    }

    /// One batch through [`TextEncoder::forward_packed`], pooled per sequence over its rows.
    fn embed_packed(&self, encs: &[Encoding]) -> Result<Vec<Vec<f32>>> {
        let mut cu = Vec::with_capacity(encs.len() + 1);
        cu.push(0u32);
        let (mut ids, mut types) = (Vec::new(), Vec::new());
        for e in encs {
            ids.extend_from_slice(e.get_ids());
            types.extend_from_slice(e.get_type_ids());
            cu.push(ids.len() as u32);
        }
        let n = ids.len();
        let ids = Tensor::from_vec(ids, n, &self.device)?;
        let types = Tensor::from_vec(types, n, &self.device)?;
        let h = self.model.forward_packed(&ids, Some(&types), &cu)?;
        let rows = h.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.to_vec2()?;
        Ok(cu
            .windows(2)
            .map(|w| self.pool(&rows[w[0] as usize..w[1] as usize]))
            .collect())
    }

    /// Pools one sequence's token states (real tokens only) as the pipeline says.
    fn pool(&self, rows: &[Vec<f32>]) -> Vec<f32> {
        let h = self.model.hidden_size();
        let mut out = Vec::with_capacity(self.dim());
        for mode in &self.pipeline.pooling {
            out.extend(pool(rows, h, *mode));
        }
        if self.pipeline.normalize {
            l2_normalize(&mut out);
        }
        out
    }
}

/// Encodings right-padded with id 0 into one batch (the encoders' and the text classifiers').
pub(crate) fn padded(encs: &[&Encoding]) -> Batch {
    let t = encs.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
    let mut batch = Batch {
        input_ids: Vec::with_capacity(encs.len()),
        token_type_ids: Vec::with_capacity(encs.len()),
        lengths: Vec::with_capacity(encs.len()),
    };
    for e in encs {
        let n = e.get_ids().len();
        let mut ids = e.get_ids().to_vec();
        let mut types = e.get_type_ids().to_vec();
        ids.resize(t, 0);
        types.resize(t, 0);
        batch.input_ids.push(ids);
        batch.token_type_ids.push(types);
        batch.lengths.push(n as u32);
    }
    batch
}

/// sentence-transformers' `Pooling` over the real tokens of one sequence.
pub fn pool(rows: &[Vec<f32>], hidden: usize, mode: PoolingMode) -> Vec<f32> {
    match mode {
        PoolingMode::Cls => rows.first().cloned().unwrap_or_else(|| vec![0.0; hidden]),
        PoolingMode::Max => {
            // Masked positions are -1e9 in sentence-transformers; with no real token that is
            // the result.
            let mut m = vec![-1e9f32; hidden];
            for r in rows {
                for (a, &b) in m.iter_mut().zip(r) {
                    *a = a.max(b);
                }
            }
            m
        }
        PoolingMode::Mean | PoolingMode::MeanSqrtLen => {
            let mut s = vec![0f32; hidden];
            for r in rows {
                for (a, &b) in s.iter_mut().zip(r) {
                    *a += b;
                }
            }
            let n = (rows.len() as f32).max(1e-9);
            let d = if mode == PoolingMode::Mean {
                n
            } else {
                n.sqrt()
            };
            s.iter_mut().for_each(|x| *x /= d);
            s
        }
    }
}

/// `F.normalize(p=2)`: divide by the L2 norm (at least 1e-12).
pub fn l2_normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

pub(crate) fn load_tokenizer(dir: &Path, max_length: usize) -> Result<Tokenizer> {
    let Some(path) = folder::member(dir, "tokenizer.json")? else {
        return Err(Error::Tokenizer(format!(
            "{} is missing: the model folder needs the tokenizer.json it was trained with",
            dir.join("tokenizer.json").display()
        )));
    };
    let mut tok = Tokenizer::from_file(&path).map_err(|e| {
        Error::Tokenizer(format!(
            "{}: {}",
            path.display(),
            safe_message(&e.to_string())
        ))
    })?;
    tok.with_padding(None);
    tok.with_truncation(Some(TruncationParams {
        max_length,
        strategy: TruncationStrategy::LongestFirst,
        stride: 0,
        direction: TruncationDirection::Right,
    }))
    .map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn encoder_is_send_and_sync() {
        assert_send_sync::<SentenceEncoder>();
    }

    #[test]
    fn pooling_modes() {
        let rows = vec![vec![1.0, -2.0], vec![3.0, 4.0]];
        assert_eq!(pool(&rows, 2, PoolingMode::Cls), vec![1.0, -2.0]);
        assert_eq!(pool(&rows, 2, PoolingMode::Mean), vec![2.0, 1.0]);
        assert_eq!(pool(&rows, 2, PoolingMode::Max), vec![3.0, 4.0]);
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
    }
}
