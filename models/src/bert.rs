//! BERT encoders (BERT, MiniLM, the sentence-transformers family), mirroring Hugging Face
//! `transformers/models/bert/modeling_bert.py` (`BertEmbeddings`, `BertSelfAttention`,
//! `BertSelfOutput`, `BertIntermediate`, `BertOutput`, `BertLayer`, `BertEncoder`, `BertModel`).
//! State-dict names load unchanged, with or without the `bert.` prefix (decided once from the
//! keys). Load-time transforms: Q/K/V fused into one projection, weights transposed, embedding
//! tables and LayerNorm parameters packed for the fused kernels.

use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use torchless_kernels::activation::Activation;
use torchless_kernels::attention::{
    flash_attention, varlen_attention, AttentionOptions, VarlenOptions,
};
use torchless_kernels::embeddings::{bert_embeddings, bert_embeddings_packed, BertEmbeddingTables};
use torchless_kernels::norm::{add_layer_norm, NormParams};

use crate::family::{layer_norm, LoadContext, Result2, SequenceClassifier, TextEncoder};
use crate::{hf_activation, Linear};

/// `config.json` of a BERT model, as Hugging Face writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct RawBertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// FFN size.
    pub intermediate_size: usize,
    /// FFN activation (`gelu`, `gelu_new`, `relu`, ...).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Position table size.
    pub max_position_embeddings: usize,
    /// Token type table size.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Only `absolute` is supported.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    /// `model_type` (`bert`, ...).
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

/// A checked BERT configuration.
#[derive(Debug, Clone)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// FFN size.
    pub intermediate: usize,
    /// FFN activation.
    pub act: Activation,
    /// Position table size.
    pub max_positions: usize,
    /// Token type table size.
    pub type_vocab: usize,
    /// LayerNorm epsilon.
    pub eps: f64,
}

/// `model_type`s this file loads.
pub const MODEL_TYPES: &[&str] = &["bert"];

impl RawBertConfig {
    /// Checks the configuration.
    pub fn into_config(self) -> Result<BertConfig> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            bail!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        if let Some(p) = self.position_embedding_type.as_deref() {
            if p != "absolute" {
                bail!("position_embedding_type {p:?} is not supported (only \"absolute\")");
            }
        }
        let act = hf_activation(&self.hidden_act).map_err(candle_core::Error::wrap)?;
        Ok(BertConfig {
            vocab_size: self.vocab_size,
            hidden: self.hidden_size,
            layers: self.num_hidden_layers,
            heads: self.num_attention_heads,
            intermediate: self.intermediate_size,
            act,
            max_positions: self.max_position_embeddings,
            type_vocab: self.type_vocab_size,
            eps: self.layer_norm_eps,
        })
    }
}

/// Where a BERT encoder's tensors can sit: `BertModel` at the root, `BertFor*` under `bert.`,
/// some sentence-transformers exports under `model.` or `encoder.`.
pub const PREFIXES: &[&str] = &["", "bert.", "model.", "encoder."];

/// The registry's loader: `config.json` checked, the prefix decided from the keys.
pub fn load_encoder(ctx: &LoadContext) -> Result2<Box<dyn TextEncoder>> {
    let config = ctx.config::<RawBertConfig>("BERT")?.into_config()?;
    let prefix = ctx.prefix(PREFIXES, "embeddings.word_embeddings.weight", "BERT")?;
    Ok(Box::new(BertModel::load(ctx.under(prefix), config)?))
}

impl TextEncoder for BertModel {
    fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        lengths: &[u32],
    ) -> Result<Tensor> {
        BertModel::forward(self, input_ids, token_type_ids, lengths)
    }

    fn runs_packed(&self) -> bool {
        BertModel::runs_packed(self)
    }

    fn forward_packed(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        cu_seqlens: &[u32],
    ) -> Result<Tensor> {
        BertModel::forward_packed(self, input_ids, token_type_ids, cu_seqlens)
    }

    fn hidden_size(&self) -> usize {
        self.config.hidden
    }

    fn max_positions(&self) -> usize {
        self.config.max_positions
    }
}

// modeling_bert.py: BertEmbeddings
struct Embeddings {
    tables: BertEmbeddingTables,
}

impl Embeddings {
    fn load(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let word = vb
            .pp("word_embeddings")
            .get((c.vocab_size, c.hidden), "weight")?;
        let pos = vb
            .pp("position_embeddings")
            .get((c.max_positions, c.hidden), "weight")?;
        let typ = vb
            .pp("token_type_embeddings")
            .get((c.type_vocab, c.hidden), "weight")?;
        let ln = vb.pp("LayerNorm");
        let w = ln.get(c.hidden, "weight")?;
        let b = ln.get(c.hidden, "bias")?;
        Ok(Embeddings {
            tables: BertEmbeddingTables::new(&word, &pos, &typ, &w, &b, c.eps)?,
        })
    }
}

// modeling_bert.py: BertLayer (BertAttention + BertIntermediate + BertOutput). Crate-visible so
// families with BERT's post-norm layer under other weight names (DistilBERT) build it directly.
pub(crate) struct Layer {
    /// Q, K and V fused: `[H] -> [3H]`.
    pub(crate) qkv: Linear,
    pub(crate) attn_out: Linear,
    pub(crate) attn_ln: NormParams,
    pub(crate) inter: Linear,
    pub(crate) out: Linear,
    pub(crate) out_ln: NormParams,
}

impl Layer {
    fn load(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let h = c.hidden;
        let sa = vb.pp("attention").pp("self");
        let qkv = Linear::load_fused(
            &[(sa.pp("query"), h), (sa.pp("key"), h), (sa.pp("value"), h)],
            h,
            true,
        )?;
        let ao = vb.pp("attention").pp("output");
        Ok(Layer {
            qkv,
            attn_out: Linear::load(ao.pp("dense"), h, h, true)?,
            attn_ln: layer_norm(ao.pp("LayerNorm"), h)?,
            inter: Linear::load(vb.pp("intermediate").pp("dense"), h, c.intermediate, true)?,
            out: Linear::load(vb.pp("output").pp("dense"), c.intermediate, h, true)?,
            out_ln: layer_norm(vb.pp("output").pp("LayerNorm"), h)?,
        })
    }

    fn forward(&self, x: &Tensor, c: &BertConfig, opts: &AttentionOptions) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let dh = h / c.heads;
        // [B, T, 3H] -> [3, B, heads, T, dh]
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, t, 3, c.heads, dh))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let ctx = flash_attention(&qkv.get(0)?, &qkv.get(1)?, &qkv.get(2)?, opts)?;
        let ctx = ctx.transpose(1, 2)?.contiguous()?.reshape((b, t, h))?;
        let a = self.attn_out.forward(&ctx)?;
        let x = add_layer_norm(&a, Some(x), &self.attn_ln, c.eps)?;
        self.feed_forward(x, c)
    }

    /// The same layer on a packed batch: `x` `[N, H]`, the sequences back to back
    /// (`cu_seqlens`); the projections run on the `N` real rows, attention per sequence.
    fn forward_packed(
        &self,
        x: &Tensor,
        cu_seqlens: &[u32],
        c: &BertConfig,
        opts: &VarlenOptions,
    ) -> Result<Tensor> {
        // [N, 3H] read in place by the varlen kernel: no head permute, no padding.
        let ctx = varlen_attention(&self.qkv.forward(x)?, cu_seqlens, opts)?;
        let a = self.attn_out.forward(&ctx)?;
        let x = add_layer_norm(&a, Some(x), &self.attn_ln, c.eps)?;
        self.feed_forward(x, c)
    }

    /// BertIntermediate + BertOutput on any leading dims.
    fn feed_forward(&self, x: Tensor, c: &BertConfig) -> Result<Tensor> {
        let i = self.inter.forward_act(&x, c.act)?;
        let o = self.out.forward(&i)?;
        add_layer_norm(&o, Some(&x), &self.out_ln, c.eps)
    }
}

/// `BertModel` without the pooler: the encoder's last hidden state.
pub struct BertModel {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    /// The checked configuration.
    pub config: BertConfig,
}

impl BertModel {
    /// Loads from `vb` (already positioned at the checkpoint's prefix, see [`detect_prefix`]).
    pub fn load(vb: VarBuilder, config: BertConfig) -> Result<Self> {
        let embeddings = Embeddings::load(vb.pp("embeddings"), &config)?;
        let layers = (0..config.layers)
            .map(|i| Layer::load(vb.pp("encoder").pp("layer").pp(i), &config))
            .collect::<Result<Vec<_>>>()?;
        Ok(BertModel {
            embeddings,
            layers,
            config,
        })
    }

    /// A model from already-loaded parts (a family with BERT's layers under other names).
    pub(crate) fn from_parts(
        tables: BertEmbeddingTables,
        layers: Vec<Layer>,
        config: BertConfig,
    ) -> Self {
        BertModel {
            embeddings: Embeddings { tables },
            layers,
            config,
        }
    }

    /// The model's activation dtype.
    pub fn dtype(&self) -> DType {
        self.embeddings.tables.dtype()
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.embeddings.tables.word().device()
    }

    /// Runs the encoder. `input_ids` / `token_type_ids` are `[B, T]` (u32), right-padded;
    /// `lengths[b]` is the number of real tokens of row `b`. Returns `[B, T, H]`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        lengths: &[u32],
    ) -> Result<Tensor> {
        self.forward_at(input_ids, token_type_ids, lengths, 0)
    }

    /// [`forward`](Self::forward) with the positions of the real tokens starting at
    /// `position_offset` of the position table (RoBERTa: `pad_token_id + 1`).
    pub(crate) fn forward_at(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        lengths: &[u32],
        position_offset: usize,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        if lengths.len() != b || lengths.iter().any(|&l| l as usize > t) {
            bail!("lengths {lengths:?} do not fit a batch of {b} rows of {t} tokens");
        }
        let usable = self.config.max_positions.saturating_sub(position_offset);
        if t > usable {
            bail!("{t} tokens exceed the model's {usable} positions");
        }
        let mut x = bert_embeddings(
            input_ids,
            token_type_ids,
            position_offset,
            &self.embeddings.tables,
        )?;
        let opts = AttentionOptions {
            scale: 1.0 / ((self.config.hidden / self.config.heads) as f32).sqrt(),
            causal: false,
            key_lengths: if lengths.iter().all(|&l| l as usize == t) {
                None
            } else {
                Some(lengths.to_vec())
            },
        };
        for layer in &self.layers {
            x = layer.forward(&x, &self.config, &opts)?;
        }
        Ok(x)
    }

    /// Whether [`forward_packed`](Self::forward_packed) is the faster route here: on the CPU,
    /// where the varlen attention kernel runs. On CUDA it would pad inside attention (no varlen
    /// kernel yet), so callers keep the padded batch there.
    pub fn runs_packed(&self) -> bool {
        self.device().is_cpu()
    }

    /// Runs the encoder unpadded: `input_ids` / `token_type_ids` `[N]` (u32) hold the batch's
    /// sequences back to back, sequence `i` in rows `cu_seqlens[i]..cu_seqlens[i + 1]`, each
    /// with its own positions. Returns `[N, H]`: every projection, LayerNorm and activation
    /// runs on the `N` real tokens and attention per sequence, so a call costs its real token
    /// count (the padded [`forward`](Self::forward) pays `B·max(L)`).
    pub fn forward_packed(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        cu_seqlens: &[u32],
    ) -> Result<Tensor> {
        self.forward_packed_at(input_ids, token_type_ids, cu_seqlens, 0)
    }

    /// [`forward_packed`](Self::forward_packed) with each sequence's positions starting at
    /// `position_offset` (RoBERTa: `pad_token_id + 1`).
    pub(crate) fn forward_packed_at(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        cu_seqlens: &[u32],
        position_offset: usize,
    ) -> Result<Tensor> {
        let usable = self.config.max_positions.saturating_sub(position_offset);
        let longest = cu_seqlens
            .windows(2)
            .map(|p| p[1].saturating_sub(p[0]) as usize)
            .max()
            .unwrap_or(0);
        if longest > usable {
            bail!("{longest} tokens exceed the model's {usable} positions");
        }
        let mut x = bert_embeddings_packed(
            input_ids,
            token_type_ids,
            cu_seqlens,
            position_offset,
            &self.embeddings.tables,
        )?;
        let heads = self.config.heads;
        let opts = VarlenOptions {
            heads,
            kv_heads: heads,
            scale: 1.0 / ((self.config.hidden / heads) as f32).sqrt(),
            causal: false,
        };
        for layer in &self.layers {
            x = layer.forward_packed(&x, cu_seqlens, &self.config, &opts)?;
        }
        Ok(x)
    }
}

/// A classification head on the first token: `out(tanh(dense(h[:, 0])))`, dropout being the
/// identity in eval. BERT's is `bert.pooler.dense` + `classifier` (modeling_bert.py:
/// `BertPooler`, `BertForSequenceClassification`); RoBERTa's is `classifier.dense` +
/// `classifier.out_proj` (modeling_roberta.py: `RobertaClassificationHead`).
pub(crate) struct TanhHead {
    dense: Linear,
    out: Linear,
    num_labels: usize,
}

impl TanhHead {
    /// `dense` `[H] -> [H]` and `out` `[H] -> [num_labels]`, both with biases.
    pub(crate) fn load(
        dense: VarBuilder,
        out: VarBuilder,
        hidden: usize,
        num_labels: usize,
    ) -> Result<Self> {
        Ok(TanhHead {
            dense: Linear::load(dense, hidden, hidden, true)?,
            out: Linear::load(out, hidden, num_labels, true)?,
            num_labels,
        })
    }

    /// Logits `[B, num_labels]` from the last hidden state `[B, T, H]`.
    pub(crate) fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let first = hidden.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
        let pooled = self.dense.forward(&first)?.tanh()?;
        self.out.forward(&pooled)
    }

    pub(crate) fn num_labels(&self) -> usize {
        self.num_labels
    }
}

/// `BertForSequenceClassification` (cross-encoder rerankers such as ms-marco-MiniLM, BERT text
/// classifiers): [`BertModel`] under `bert.`, the pooler (`bert.pooler.dense` + tanh on
/// `[CLS]`), then the `classifier` linear layer at the root.
pub struct BertForSequenceClassification {
    bert: BertModel,
    head: TanhHead,
}

impl BertForSequenceClassification {
    /// Loads from the checkpoint root `vb`, the encoder and pooler under `prefix`.
    pub fn load(
        vb: VarBuilder,
        prefix: &str,
        config: BertConfig,
        num_labels: usize,
    ) -> Result<Self> {
        let p = prefix.trim_end_matches('.');
        let enc = if p.is_empty() { vb.clone() } else { vb.pp(p) };
        let head = TanhHead::load(
            enc.pp("pooler").pp("dense"),
            vb.pp("classifier"),
            config.hidden,
            num_labels,
        )?;
        Ok(BertForSequenceClassification {
            bert: BertModel::load(enc, config)?,
            head,
        })
    }
}

impl SequenceClassifier for BertForSequenceClassification {
    fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        lengths: &[u32],
    ) -> Result<Tensor> {
        self.head
            .forward(&self.bert.forward(input_ids, token_type_ids, lengths)?)
    }

    fn num_labels(&self) -> usize {
        self.head.num_labels()
    }

    fn max_positions(&self) -> usize {
        self.bert.config.max_positions
    }
}

/// The registry's loader for `BertForSequenceClassification` folders: the encoder's prefix
/// decided from the keys (`bert.`), the label count from `config.json` (`num_labels`, else
/// `id2label`).
pub fn load_sequence_classifier(ctx: &LoadContext) -> Result2<Box<dyn SequenceClassifier>> {
    let config = ctx.config::<RawBertConfig>("BERT")?.into_config()?;
    let num_labels = crate::family::num_labels(ctx.config)?;
    let prefix = ctx.prefix(PREFIXES, "embeddings.word_embeddings.weight", "BERT")?;
    Ok(Box::new(BertForSequenceClassification::load(
        ctx.vb.clone(),
        prefix,
        config,
        num_labels,
    )?))
}
