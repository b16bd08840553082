//! Choosing the next token from a row of logits, as `transformers`' `generate()` does:
//! the repetition penalty (`RepetitionPenaltyLogitsProcessor`), then for sampling the
//! temperature, top-k and top-p warpers in that order (`TemperatureLogitsWarper`,
//! `TopKLogitsWarper`, `TopPLogitsWarper`), then a draw from the softmax with a seeded
//! ChaCha20 generator (same seed, same tokens, on every machine). Greedy picks the first
//! maximum, as `torch.argmax` does.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::error::{Error, Result};

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    /// The most likely token.
    Greedy,
    /// A draw from the warped distribution.
    Sample {
        /// Divides the logits (`> 0`; 1 leaves them).
        temperature: f32,
        /// Keep only the `k` most likely tokens (ties at the k-th value kept).
        top_k: Option<usize>,
        /// Keep the smallest set of most likely tokens whose probability reaches `p`
        /// (`0 < p <= 1`).
        top_p: Option<f32>,
        /// The generator's seed.
        seed: u64,
    },
}

/// The sampling choice plus the repetition penalty, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// Greedy or sampled.
    pub sampling: Sampling,
    /// `> 1` discourages tokens already in the sequence (1: off).
    pub repetition_penalty: f32,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            sampling: Sampling::Greedy,
            repetition_penalty: 1.0,
        }
    }
}

impl SamplerConfig {
    /// Rejects values `transformers` rejects too.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Option(m));
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return bad(format!(
                "repetition penalty must be a positive number, got {}",
                self.repetition_penalty
            ));
        }
        if let Sampling::Sample {
            temperature,
            top_k,
            top_p,
            ..
        } = &self.sampling
        {
            if !(temperature.is_finite() && *temperature > 0.0) {
                return bad(format!(
                    "temperature must be a positive number, got {temperature} (use greedy decoding for 0)"
                ));
            }
            if *top_k == Some(0) {
                return bad("top-k must be at least 1".into());
            }
            if let Some(p) = top_p {
                if !(*p > 0.0 && *p <= 1.0) {
                    return bad(format!("top-p must be in (0, 1], got {p}"));
                }
            }
        }
        Ok(())
    }
}

/// A sampler for one sequence (owns the random generator's state).
#[derive(Debug, Clone)]
pub struct Sampler {
    config: SamplerConfig,
    rng: ChaCha20Rng,
}

impl Sampler {
    /// A sampler; errors on invalid settings.
    pub fn new(config: SamplerConfig) -> Result<Self> {
        config.check()?;
        let seed = match config.sampling {
            Sampling::Sample { seed, .. } => seed,
            Sampling::Greedy => 0,
        };
        Ok(Sampler {
            config,
            rng: ChaCha20Rng::seed_from_u64(seed),
        })
    }

    /// Picks the next token from `logits` (one row, modified in place) given every token of
    /// the sequence so far (`history`: prompt and generated, for the repetition penalty).
    pub fn next(&mut self, logits: &mut [f32], history: &[u32]) -> Result<u32> {
        if logits.is_empty() {
            return Err(Error::Option("no logits to choose from".into()));
        }
        repetition_penalty(logits, history, self.config.repetition_penalty);
        let Sampling::Sample {
            temperature,
            top_k,
            top_p,
            ..
        } = self.config.sampling
        else {
            return Ok(argmax(logits));
        };
        if temperature != 1.0 {
            logits.iter_mut().for_each(|x| *x /= temperature);
        }
        if let Some(k) = top_k {
            keep_top_k(logits, k);
        }
        if let Some(p) = top_p {
            keep_top_p(logits, p);
        }
        let probs = softmax(logits);
        let u: f64 = self.rng.random::<f64>();
        let mut acc = 0f64;
        let mut last = None;
        for (i, &p) in probs.iter().enumerate() {
            if p > 0.0 {
                acc += p;
                last = Some(i);
                if u < acc {
                    return Ok(i as u32);
                }
            }
        }
        // Rounding left `acc` a hair under `u`: the last token with mass.
        last.map(|i| i as u32)
            .ok_or_else(|| Error::Option("every logit is -inf or NaN: nothing to sample".into()))
    }
}

/// Index of the first maximum (NaN never wins).
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    let mut v = f32::NEG_INFINITY;
    for (i, &y) in x.iter().enumerate() {
        if y > v {
            v = y;
            best = i;
        }
    }
    best as u32
}

/// `RepetitionPenaltyLogitsProcessor`: every token present in `history` has its logit divided
/// by `penalty` when positive, multiplied when negative (once, however often it occurs).
pub fn repetition_penalty(logits: &mut [f32], history: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = vec![false; logits.len()];
    for &id in history {
        let i = id as usize;
        if i < logits.len() && !seen[i] {
            seen[i] = true;
            let x = logits[i];
            logits[i] = if x < 0.0 { x * penalty } else { x / penalty };
        }
    }
}

/// `TopKLogitsWarper`: logits below the k-th largest become -inf.
pub fn keep_top_k(logits: &mut [f32], k: usize) {
    let k = k.max(1);
    if k >= logits.len() {
        return;
    }
    let mut sorted: Vec<f32> = logits.to_vec();
    sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let kth = sorted[k - 1];
    logits
        .iter_mut()
        .filter(|x| **x < kth)
        .for_each(|x| *x = f32::NEG_INFINITY);
}

/// `TopPLogitsWarper`: sorted ascending, the tokens whose cumulative probability stays at or
/// below `1 - p` become -inf; the most likely token always stays.
pub fn keep_top_p(logits: &mut [f32], p: f32) {
    if p >= 1.0 {
        return;
    }
    let probs = softmax(logits);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(a.cmp(&b)));
    let mut cum = 0f64;
    let last = order.len().saturating_sub(1);
    for (rank, &i) in order.iter().enumerate() {
        cum += probs[i];
        if rank < last && cum <= f64::from(1.0 - p) {
            logits[i] = f32::NEG_INFINITY;
        }
    }
}

/// Softmax in f64 (NaN treated as -inf).
fn softmax(x: &[f32]) -> Vec<f64> {
    let m = x
        .iter()
        .filter(|v| !v.is_nan())
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    if m == f32::NEG_INFINITY {
        return vec![0.0; x.len()];
    }
    let e: Vec<f64> = x
        .iter()
        .map(|&v| {
            if v.is_nan() {
                0.0
            } else {
                f64::from(v - m).exp()
            }
        })
        .collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f32, k: Option<usize>, p: Option<f32>, seed: u64) -> SamplerConfig {
        SamplerConfig {
            sampling: Sampling::Sample {
                temperature: t,
                top_k: k,
                top_p: p,
                seed,
            },
            repetition_penalty: 1.0,
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum() -> Result<()> {
        let mut s = Sampler::new(SamplerConfig::default())?;
        assert_eq!(s.next(&mut [0.1, 3.0, 3.0, f32::NAN], &[])?, 1);
        Ok(())
    }

    #[test]
    fn repetition_penalty_matches_transformers() {
        let mut x = [2.0, -2.0, 1.0];
        repetition_penalty(&mut x, &[0, 1, 1], 2.0);
        assert_eq!(x, [1.0, -4.0, 1.0]);
        // With the penalty, greedy moves off the repeated token.
        let mut s = Sampler::new(SamplerConfig {
            sampling: Sampling::Greedy,
            repetition_penalty: 2.0,
        })
        .unwrap();
        assert_eq!(s.next(&mut [2.0, -2.0, 1.5], &[0]).unwrap(), 2);
    }

    #[test]
    fn top_k_keeps_ties_at_the_threshold() {
        let mut x = [1.0, 5.0, 3.0, 3.0, 0.0];
        keep_top_k(&mut x, 2);
        assert_eq!(x, [f32::NEG_INFINITY, 5.0, 3.0, 3.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn top_p_keeps_the_smallest_covering_set() {
        // probabilities ~ [0.643, 0.237, 0.087, 0.032]
        let mut x = [3.0, 2.0, 1.0, 0.0];
        keep_top_p(&mut x, 0.8);
        assert_eq!(x, [3.0, 2.0, f32::NEG_INFINITY, f32::NEG_INFINITY]);
        let mut y = [3.0, 2.0, 1.0, 0.0];
        keep_top_p(&mut y, 0.01);
        assert_eq!(y[0], 3.0);
        assert!(y[1..].iter().all(|v| *v == f32::NEG_INFINITY));
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_respects_top_k() -> Result<()> {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let run = |seed| -> Result<Vec<u32>> {
            let mut s = Sampler::new(sample(1.3, Some(5), Some(0.9), seed))?;
            (0..200).map(|_| s.next(&mut logits.clone(), &[])).collect()
        };
        let a = run(7)?;
        assert_eq!(a, run(7)?);
        assert_ne!(a, run(8)?);
        // Only the seven logits equal to the largest value (6 * 0.3: indices 6, 13, ...)
        // survive top-5 (ties kept), and the draw spreads over them.
        assert!(a.iter().all(|&i| i % 7 == 6), "{a:?}");
        let distinct: std::collections::BTreeSet<u32> = a.iter().copied().collect();
        assert_eq!(distinct.len(), 7, "{distinct:?}");
        Ok(())
    }

    #[test]
    fn sampling_follows_the_distribution() -> Result<()> {
        // p = [0.5, 0.25, 0.25] at temperature 1.
        let l = [2f32.ln(), 0.0, 0.0];
        let mut s = Sampler::new(sample(1.0, None, None, 1))?;
        let n = 20_000;
        let mut counts = [0usize; 3];
        for _ in 0..n {
            counts[s.next(&mut l.clone(), &[])? as usize] += 1;
        }
        let f0 = counts[0] as f64 / n as f64;
        assert!((f0 - 0.5).abs() < 0.02, "{counts:?}");
        Ok(())
    }

    #[test]
    fn invalid_settings_are_refused() {
        assert!(Sampler::new(sample(0.0, None, None, 0)).is_err());
        assert!(Sampler::new(sample(1.0, Some(0), None, 0)).is_err());
        assert!(Sampler::new(sample(1.0, None, Some(1.5), 0)).is_err());
        assert!(Sampler::new(SamplerConfig {
            sampling: Sampling::Greedy,
            repetition_penalty: -1.0
        })
        .is_err());
    }
}
