//! The checks every sentence-encoder family runs against its fixture folder
//! (`tests/fixtures/<family>/tiny-st` + `expected.json`, written by the family's generator from
//! real PyTorch + sentence-transformers): tokenization, the padded batch's hidden states,
//! embeddings at several batch sizes, padding invariance, a prefixed `*ForMaskedLM` checkpoint,
//! and the `embed` CLI. Each family's test file states its own numbers and calls these.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use torchless::{DeviceSpec, LoadOptions, SentenceEncoder};

use crate::common::{fixture, floats, ints, rel_err, s, torchless};

/// One family's fixture.
pub struct EncoderFixture {
    /// The folder under `tests/fixtures/`.
    pub family: &'static str,
    /// The embedding size.
    pub dim: usize,
}

/// Loads a sentence encoder on the CPU in f32.
pub fn load(dir: &Path) -> SentenceEncoder {
    let opts = LoadOptions {
        device: DeviceSpec::Cpu,
        ..Default::default()
    };
    SentenceEncoder::load(dir, &opts).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

impl EncoderFixture {
    /// `expected.json`.
    pub fn expected(&self) -> Value {
        let p = fixture(&format!("{}/expected.json", self.family));
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    /// The sentence-transformers folder.
    pub fn model(&self) -> PathBuf {
        fixture(&format!("{}/tiny-st", self.family))
    }

    /// The fixture's sentences, in order.
    pub fn sentences(&self) -> Vec<String> {
        self.expected()["sentences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["text"].as_str().unwrap().to_string())
            .collect()
    }

    /// Token ids equal the Python tokenizer's, truncated at `max_tokens`.
    pub fn tokenization(&self, max_tokens: usize) {
        let e = self.expected();
        let enc = load(&self.model());
        assert_eq!(enc.max_tokens(), max_tokens);
        for (text, want) in self
            .sentences()
            .iter()
            .zip(e["sentences"].as_array().unwrap())
        {
            let b = enc.tokenize(&[text]).unwrap();
            assert_eq!(b.input_ids[0], ints(&want["input_ids"]), "{text:?}");
        }
    }

    /// The padded batch's last hidden states within 1e-4 relative of PyTorch, real tokens only.
    pub fn hidden_states(&self) {
        let e = self.expected();
        let enc = load(&self.model());
        let texts = self.sentences();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let batch = enc.tokenize(&refs).unwrap();
        let h = enc.hidden_states(&batch).unwrap();
        let mut worst = 0f32;
        for (i, want) in e["batch"]["last_hidden_state"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let n = batch.lengths[i] as usize;
            let mask = ints(&e["batch"]["attention_mask"][i]);
            assert_eq!(n as u32, mask.iter().sum::<u32>(), "row {i}");
            assert_eq!(
                &batch.input_ids[i][..n],
                &ints(&e["batch"]["input_ids"][i])[..n]
            );
            let got: Vec<f32> = h[i][..n].iter().flatten().copied().collect();
            let want: Vec<f32> = want.as_array().unwrap()[..n]
                .iter()
                .flat_map(floats)
                .collect();
            let err = rel_err(&got, &want);
            worst = worst.max(err);
            assert!(err < 1e-4, "batch row {i}: relative error {err}");
        }
        eprintln!(
            "{} hidden states: max relative error {worst:e}",
            self.family
        );
    }

    /// Embeddings within 1e-4 relative of `SentenceTransformer.encode` at every batch size.
    pub fn embeddings(&self, batch_sizes: &[usize]) {
        let e = self.expected();
        let enc = load(&self.model());
        assert_eq!(enc.dim(), self.dim);
        let texts = self.sentences();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut worst = 0f32;
        for &batch_size in batch_sizes {
            let got = enc.embed(&refs, batch_size).unwrap();
            for (i, want) in e["embeddings"].as_array().unwrap().iter().enumerate() {
                let err = rel_err(&got[i], &floats(want));
                worst = worst.max(err);
                assert!(
                    err < 1e-4,
                    "sentence {i}, batch {batch_size}: relative error {err}"
                );
            }
        }
        eprintln!("{} embeddings: max relative error {worst:e}", self.family);
    }

    /// A short sentence embeds the same alone and batched with a longer one and `other`.
    pub fn padding_invariance(&self, other: &str) {
        let enc = load(&self.model());
        let short = "Hello world";
        let alone = enc.embed(&[short], 1).unwrap();
        let long = "In the early morning light the old lighthouse keeper climbed the stairs";
        let batched = enc.embed(&[long, short, other], 3).unwrap();
        let d = alone[0]
            .iter()
            .zip(&batched[1])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-5, "max |alone - batched| = {d}");
    }

    /// A `*ForMaskedLM`-layout folder built from `tiny-st` in `dir`: the encoder's keys under
    /// `prefix`, an extra `bias` tensor of `vocab` zeros, `model.safetensors`, `architecture`,
    /// and no sentence-transformers files.
    pub fn prefixed_folder(
        &self,
        dir: &Path,
        prefix: &str,
        bias: &str,
        vocab: usize,
        architecture: &str,
    ) {
        let src = self.model();
        let plain = dir.join("plain.safetensors");
        torchless::convert::convert(
            &src.join("pytorch_model.bin"),
            &plain,
            &Default::default(),
            &Default::default(),
            &mut |_| {},
        )
        .unwrap();
        let cpu = candle_core::Device::Cpu;
        let mut map: HashMap<String, candle_core::Tensor> =
            candle_core::safetensors::load(&plain, &cpu)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (format!("{prefix}{k}"), v))
                .collect();
        std::fs::remove_file(&plain).unwrap();
        let b = candle_core::Tensor::zeros(vocab, candle_core::DType::F32, &cpu).unwrap();
        map.insert(bias.into(), b);
        candle_core::safetensors::save(&map, dir.join("model.safetensors")).unwrap();
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap())
                .unwrap();
        config["architectures"] = serde_json::json!([architecture]);
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        for f in [
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.txt",
            "special_tokens_map.json",
        ] {
            if src.join(f).exists() {
                std::fs::copy(src.join(f), dir.join(f)).unwrap();
            }
        }
    }

    /// `other` (a folder of the same weights in another layout) gives the same hidden states as
    /// `tiny-st` for the sentences `keep` selects, and truncates at `max_tokens`.
    pub fn same_hidden_states(&self, other: &Path, max_tokens: usize, keep: fn(&str) -> bool) {
        let st = load(&self.model());
        let m = load(other);
        assert_eq!(m.max_tokens(), max_tokens);
        let texts: Vec<String> = self.sentences().into_iter().filter(|t| keep(t)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let batch = st.tokenize(&refs).unwrap();
        let a = st.hidden_states(&batch).unwrap();
        let b = m.hidden_states(&batch).unwrap();
        for (i, n) in batch.lengths.iter().enumerate() {
            let n = *n as usize;
            let x: Vec<f32> = a[i][..n].iter().flatten().copied().collect();
            let y: Vec<f32> = b[i][..n].iter().flatten().copied().collect();
            assert!(rel_err(&x, &y) < 1e-6, "row {i}");
        }
    }

    /// `torchless embed --json` on the folder reproduces sentence-transformers.
    pub fn embed_cli(&self) {
        let e = self.expected();
        let model = self.model();
        let texts = self.sentences();
        let mut args = vec!["embed", "--model", s(&model), "--json", "--device", "cpu"];
        for t in &texts {
            args.push("--text");
            args.push(t);
        }
        let o = torchless(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["dim"], self.dim);
        let got = v["embeddings"].as_array().unwrap();
        let want = e["embeddings"].as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let err = rel_err(&floats(g), &floats(w));
            assert!(err < 1e-4, "sentence {i}: relative error {err}");
        }
    }
}
