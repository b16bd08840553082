//! The one model a worker serves, and how a batch of requests of one op runs through it: the
//! texts of every request are put in one list, run in forward passes of a fixed size, and cut
//! back into one result per request.

use std::path::Path;
use std::sync::{mpsc, Arc};

use serde_json::{json, Value};

use super::protocol::{Input, Op};
use crate::batching::{BatchLimits, GenerationEvent, GenerationQueue};
use crate::error::{Error, Result};
use crate::registry::{self, LoadOptions, Task};
use crate::{top_k, GenerateOptions, SentenceEncoder, TextClassifier, TextGenerator};

/// A model a worker can serve: a sentence encoder (`embed`), a sequence classifier
/// (`rerank`, `classify`) or a causal language model (`generate`).
pub enum WorkerModel {
    /// A BERT-family sentence encoder.
    Encoder(SentenceEncoder),
    /// A `*ForSequenceClassification` model (cross-encoder or text classifier).
    Classifier(TextClassifier),
    /// A decoder behind a [`GenerationQueue`] (the batch's sequences run concurrently).
    Generator(GenerationQueue),
}

impl WorkerModel {
    /// Loads the model folder through the registry; other tasks are refused by name. A decoder
    /// gets a [`GenerationQueue`] running up to `sequences` generations at once.
    pub fn load(dir: &Path, opts: &LoadOptions, sequences: usize) -> Result<Self> {
        let resolved = registry::resolve(dir)?;
        match resolved.family.task {
            Task::Embed => Ok(WorkerModel::Encoder(SentenceEncoder::load(dir, opts)?)),
            Task::SequenceClassify => Ok(WorkerModel::Classifier(TextClassifier::load(dir, opts)?)),
            Task::Generate => {
                let generator = TextGenerator::load(dir, opts)?;
                if generator.tokenizer().is_none() {
                    return Err(Error::Option(format!(
                        "{}: `torchless worker` needs the decoder's tokenizer.json (requests \
                         carry text prompts)",
                        dir.display()
                    )));
                }
                let limits = BatchLimits {
                    max_batch_size: sequences.max(1),
                    max_queue: sequences.max(1),
                };
                Ok(WorkerModel::Generator(GenerationQueue::new(
                    Arc::new(generator),
                    limits,
                )))
            }
            other => Err(Error::Option(format!(
                "{}: `torchless worker` serves sentence encoders (op embed), sequence \
                 classifiers (ops rerank, classify) and text generators (op generate); this \
                 folder is {} (model_type {:?}), run it with {}",
                dir.display(),
                other.describe(),
                resolved.model_type,
                other.usage()
            ))),
        }
    }

    /// The model's name (its folder's name).
    pub fn name(&self) -> &str {
        match self {
            WorkerModel::Encoder(m) => m.name(),
            WorkerModel::Classifier(m) => m.name(),
            WorkerModel::Generator(q) => q.generator().name(),
        }
    }

    /// The operations this model answers.
    pub fn ops(&self) -> &'static [Op] {
        match self {
            WorkerModel::Encoder(_) => &[Op::Embed],
            WorkerModel::Classifier(_) => &[Op::Rerank, Op::Classify],
            WorkerModel::Generator(_) => &[Op::Generate],
        }
    }

    /// Why `op` cannot run here, naming the field, or `None` when it can.
    pub fn refuses(&self, op: Op) -> Option<String> {
        if self.ops().contains(&op) {
            return None;
        }
        let (what, ops) = match self {
            WorkerModel::Encoder(_) => ("a sentence encoder", "embed"),
            WorkerModel::Classifier(_) => ("a sequence classifier", "rerank and classify"),
            WorkerModel::Generator(_) => ("a text generator", "generate"),
        };
        Some(format!(
            "field `op`: this worker's model {:?} is {what} and answers {ops} only, not `{}`",
            self.name(),
            op.name()
        ))
    }

    /// Runs `generate` inputs through the queue, all at once (up to its size concurrently), and
    /// waits for each: a greedy continuation `{"text", "token_ids", "stop"}` per input, or an
    /// error message for that input alone.
    pub fn generate(&self, inputs: &[&Input]) -> Vec<std::result::Result<Value, String>> {
        let WorkerModel::Generator(queue) = self else {
            let why = self.refuses(Op::Generate).unwrap_or_default();
            return inputs.iter().map(|_| Err(why.clone())).collect();
        };
        let generator = queue.generator();
        let mut waiting = Vec::with_capacity(inputs.len());
        for input in inputs {
            let Input::Generate {
                prompt,
                max_new_tokens,
            } = input
            else {
                waiting.push(Err("op `generate` needs a prompt".to_string()));
                continue;
            };
            let submitted = generator.encode(prompt).and_then(|ids| {
                let (tx, rx) = mpsc::channel();
                let options = GenerateOptions {
                    max_new_tokens: *max_new_tokens,
                    ..GenerateOptions::default()
                };
                let sink = Box::new(move |event: GenerationEvent| match event {
                    GenerationEvent::Token(_) => true,
                    last => tx.send(last).is_ok(),
                });
                queue.submit(ids, options, sink).map(|()| rx)
            });
            waiting.push(submitted.map_err(|e| format!("the model failed: {e}")));
        }
        waiting
            .into_iter()
            .map(|w| {
                // The sink is dropped when its sequence ends, so this cannot wait forever.
                match w?.recv() {
                    Ok(GenerationEvent::Finished(g)) => {
                        let text = generator
                            .decode(&g.new_ids)
                            .map_err(|e| format!("the model failed: {e}"))?;
                        Ok(json!({"text": text, "token_ids": g.new_ids, "stop": g.stop.as_str()}))
                    }
                    Ok(GenerationEvent::Failed(e)) => Err(format!("the model failed: {e}")),
                    Ok(GenerationEvent::Token(_)) | Err(_) => {
                        Err("the generation ended without a result".to_string())
                    }
                }
            })
            .collect()
    }

    /// Runs the inputs of one op as one batch (`forward_batch` texts per forward pass) and
    /// returns one result per input, in order. An input whose kind does not fit `op` is an
    /// [`Error::Option`].
    pub fn run(&self, op: Op, inputs: &[&Input], forward_batch: usize) -> Result<Vec<Value>> {
        if let Some(why) = self.refuses(op) {
            return Err(Error::Option(why));
        }
        let counts: Vec<usize> = inputs.iter().map(|i| i.len()).collect();
        let rows: Vec<Value> = match (self, op) {
            (WorkerModel::Encoder(enc), Op::Embed) => {
                let texts = texts_of(inputs)?;
                enc.embed(&texts, forward_batch)?
                    .into_iter()
                    .map(|e| nums(&e))
                    .collect()
            }
            (WorkerModel::Classifier(m), Op::Rerank) => {
                let mut pairs = Vec::new();
                for input in inputs {
                    let Input::Rerank { query, texts } = input else {
                        return Err(Error::Option("op `rerank` needs a query".into()));
                    };
                    pairs.extend(texts.iter().map(|t| (query.as_str(), t.as_str())));
                }
                let mut rows = Vec::with_capacity(pairs.len());
                for chunk in pairs.chunks(forward_batch.max(1)) {
                    rows.extend(m.score_pairs(chunk)?);
                }
                let single = m.num_labels() == 1;
                rows.into_iter()
                    .map(|r| if single { num(r[0]) } else { nums(&r) })
                    .collect()
            }
            (WorkerModel::Classifier(m), Op::Classify) => {
                let texts = texts_of(inputs)?;
                let labels = m.id2label();
                let mut rows = Vec::with_capacity(texts.len());
                for chunk in texts.chunks(forward_batch.max(1)) {
                    rows.extend(m.logits(chunk)?);
                }
                rows.into_iter()
                    .map(|logits| {
                        let scored: Vec<Value> = if logits.len() == 1 {
                            // One label: its activated score, as `CrossEncoder.predict`.
                            vec![json!({"index": 0, "label": labels.first(), "score": num(m.activation().apply(logits[0]))})]
                        } else {
                            top_k(&logits, logits.len())
                                .iter()
                                .map(|t| json!({"index": t.index, "label": labels.get(t.index), "score": num(t.score)}))
                                .collect()
                        };
                        json!(scored)
                    })
                    .collect()
            }
            _ => return Err(Error::Option(format!("op `{}` is not served", op.name()))),
        };
        // Cut the flat rows back into one array per input.
        let mut rows = rows.into_iter();
        Ok(counts
            .iter()
            .map(|&n| Value::Array(rows.by_ref().take(n).collect()))
            .collect())
    }
}

/// An f32 as the shortest decimal that reads back to it (`0.21585314`, not the f64 digits
/// `0.21585313975811005`): half the bytes, the same value. Not finite: `null`.
fn num(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn nums(xs: &[f32]) -> Value {
    Value::Array(xs.iter().copied().map(num).collect())
}

fn texts_of<'a>(inputs: &[&'a Input]) -> Result<Vec<&'a str>> {
    let mut texts = Vec::new();
    for input in inputs {
        let Input::Texts(t) = input else {
            return Err(Error::Option("a list of texts was expected".into()));
        };
        texts.extend(t.iter().map(String::as_str));
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_the_shortest_f32_decimal() {
        assert_eq!(num(0.1).to_string(), "0.1");
        assert_eq!(num(0.21585314).to_string(), "0.21585314");
        assert_eq!(num(f32::NAN), Value::Null);
        assert_eq!(nums(&[1.0, -2.5]).to_string(), "[1.0,-2.5]");
    }
}
