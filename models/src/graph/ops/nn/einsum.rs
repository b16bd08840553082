//! `einsum(equation, tensors, path=None)`: operands are contracted left to right, each pair
//! as one batched matrix product (letters both share and still need are the batch, letters
//! both share and no longer need are contracted, letters only one has and nobody needs are
//! summed first). Ellipses broadcast from the right; size-1 dims broadcast. Repeated letters
//! in one operand (diagonals) are refused.

use std::collections::BTreeSet;

use candle_core::{DType, Tensor};

use super::super::super::args::Args;
use super::super::super::value::{promote, Dt, Value};
use super::super::{one, Result};
use super::back;
use super::matmul::matmul_t;

/// One operand: its tensor and one label per dim.
struct Term {
    t: Tensor,
    labels: Vec<char>,
}

/// Labels `0`, `1`, ... stand for the ellipsis dims (right-aligned across operands).
fn ellipsis_labels(n: usize, total: usize) -> Vec<char> {
    (total - n..total)
        .map(|i| char::from_digit(i as u32, 36).unwrap_or('#'))
        .collect()
}

fn parse(a: &Args, eq: &str, ranks: &[usize]) -> Result<(Vec<Vec<char>>, Vec<char>)> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let specs: Vec<&str> = lhs.split(',').collect();
    if specs.len() != ranks.len() {
        return Err(a.err(format!(
            "equation {eq:?} names {} operands, {} given",
            specs.len(),
            ranks.len()
        )));
    }
    // How many dims the ellipsis covers, per operand and at most.
    let mut ell = Vec::new();
    for (s, &r) in specs.iter().zip(ranks) {
        let letters = s.replace("...", "").chars().count();
        let n = if s.contains("...") {
            r.checked_sub(letters)
                .ok_or_else(|| a.err(format!("operand {s:?} has rank {r}")))?
        } else {
            if letters != r {
                return Err(a.err(format!("operand {s:?} has rank {r}")));
            }
            0
        };
        ell.push(n);
    }
    let total = ell.iter().copied().max().unwrap_or(0);
    if total > 10 {
        return Err(a.err("an ellipsis of more than 10 dims is not supported"));
    }
    let expand = |s: &str, n: usize| -> Result<Vec<char>> {
        let mut out = Vec::new();
        let mut parts = s.split("...");
        let head = parts.next().unwrap_or("");
        out.extend(head.chars());
        if let Some(tail) = parts.next() {
            out.extend(ellipsis_labels(n, total));
            out.extend(tail.chars());
        }
        if let Some(c) = out
            .iter()
            .find(|c| !c.is_ascii_alphabetic() && !c.is_ascii_digit())
        {
            return Err(a.err(format!("equation {eq:?}: unexpected {c:?}")));
        }
        Ok(out)
    };
    let terms = specs
        .iter()
        .zip(&ell)
        .map(|(s, &n)| expand(s, n))
        .collect::<Result<Vec<_>>>()?;
    let out = match rhs {
        Some(r) => expand(&r, total)?,
        None => {
            // Implicit: the ellipsis, then letters used once, alphabetically.
            let mut v = ellipsis_labels(total, total);
            let all: Vec<char> = terms.iter().flatten().copied().collect();
            let once: BTreeSet<char> = all
                .iter()
                .copied()
                .filter(|c| c.is_ascii_alphabetic() && all.iter().filter(|d| *d == c).count() == 1)
                .collect();
            v.extend(once);
            v
        }
    };
    Ok((terms, out))
}

fn pos(labels: &[char], c: char) -> usize {
    labels.iter().position(|&l| l == c).unwrap_or(0)
}

/// Sums the dims whose labels are not in `keep`.
fn sum_unneeded(t: Term, keep: &BTreeSet<char>) -> Result<Term> {
    let mut t = t;
    let mut i = t.labels.len();
    while i > 0 {
        i -= 1;
        if !keep.contains(&t.labels[i]) {
            t.t = t.t.sum(i)?;
            t.labels.remove(i);
        }
    }
    Ok(t)
}

fn size_of(terms: [&Term; 2], c: char) -> usize {
    terms
        .iter()
        .filter_map(|t| t.labels.iter().position(|&l| l == c).map(|i| t.t.dims()[i]))
        .max()
        .unwrap_or(1)
}

fn contract(x: Term, y: Term, needed: &BTreeSet<char>) -> Result<Term> {
    let both: Vec<char> = x
        .labels
        .iter()
        .copied()
        .filter(|c| y.labels.contains(c))
        .collect();
    let batch: Vec<char> = both
        .iter()
        .copied()
        .filter(|c| needed.contains(c))
        .collect();
    let sum: Vec<char> = both
        .iter()
        .copied()
        .filter(|c| !needed.contains(c))
        .collect();
    let xo: Vec<char> = x
        .labels
        .iter()
        .copied()
        .filter(|c| !both.contains(c))
        .collect();
    let yo: Vec<char> = y
        .labels
        .iter()
        .copied()
        .filter(|c| !both.contains(c))
        .collect();
    let sz = |c: char| size_of([&x, &y], c);
    let arrange = |t: &Term, order: &[char]| -> Result<Tensor> {
        let perm: Vec<usize> = order.iter().map(|&c| pos(&t.labels, c)).collect();
        let p = t.t.permute(perm)?;
        let shape: Vec<usize> = order.iter().map(|&c| sz(c)).collect();
        Ok(p.broadcast_as(shape)?.contiguous()?)
    };
    let prod = |cs: &[char]| cs.iter().map(|&c| sz(c)).product::<usize>();
    let (b, m, k, n) = (prod(&batch), prod(&xo), prod(&sum), prod(&yo));
    let xa = arrange(&x, &[batch.clone(), xo.clone(), sum.clone()].concat())?.reshape((b, m, k))?;
    let ya = arrange(&y, &[batch.clone(), sum.clone(), yo.clone()].concat())?.reshape((b, k, n))?;
    let r = matmul_t(&xa, &ya)?;
    let labels = [batch, xo, yo].concat();
    let shape: Vec<usize> = labels.iter().map(|&c| sz(c)).collect();
    Ok(Term {
        t: r.reshape(shape)?,
        labels,
    })
}

/// `einsum(equation, tensors, path=None)`.
pub(super) fn einsum(a: &Args) -> Result<Vec<Value>> {
    let eq = a.str_or("equation", "")?.to_string();
    let ts = a.tensors("tensors")?;
    if ts.is_empty() {
        return Err(a.err("no operands"));
    }
    let dt = ts.iter().map(|t| t.dt).reduce(promote).unwrap_or(Dt::F32);
    let (work, dt) = match dt {
        Dt::F16 | Dt::BF16 => (DType::F32, dt),
        d if d.is_float() => (d.storage(), d),
        _ => (DType::F64, if dt == Dt::Bool { Dt::I64 } else { dt }),
    };
    let ranks: Vec<usize> = ts.iter().map(|t| t.rank()).collect();
    let (specs, out) = parse(a, &eq, &ranks)?;
    let mut terms = Vec::with_capacity(ts.len());
    for (t, labels) in ts.iter().zip(specs) {
        let uniq: BTreeSet<char> = labels.iter().copied().collect();
        if uniq.len() != labels.len() {
            return Err(a.err(format!(
                "equation {eq:?}: a label repeated within one operand (a diagonal) is not supported"
            )));
        }
        terms.push(Term {
            t: t.t.to_dtype(work)?,
            labels,
        });
    }
    if let Some(c) = out
        .iter()
        .find(|c| !terms.iter().any(|t| t.labels.contains(c)))
    {
        return Err(a.err(format!(
            "equation {eq:?}: output label {c:?} is in no operand"
        )));
    }
    let mut rest = terms.into_iter();
    let mut acc = match rest.next() {
        Some(t) => t,
        None => return Err(a.err("no operands")),
    };
    let later: Vec<Term> = rest.collect();
    for i in 0..later.len() {
        let mut needed: BTreeSet<char> = out.iter().copied().collect();
        for t in &later[i + 1..] {
            needed.extend(t.labels.iter().copied());
        }
        let y = &later[i];
        let mut keep_x = needed.clone();
        keep_x.extend(y.labels.iter().copied());
        let mut keep_y = needed.clone();
        keep_y.extend(acc.labels.iter().copied());
        let x = sum_unneeded(acc, &keep_x)?;
        let y = sum_unneeded(
            Term {
                t: y.t.clone(),
                labels: y.labels.clone(),
            },
            &keep_y,
        )?;
        acc = contract(x, y, &needed)?;
    }
    let keep: BTreeSet<char> = out.iter().copied().collect();
    let acc = sum_unneeded(acc, &keep)?;
    let perm: Vec<usize> = out.iter().map(|&c| pos(&acc.labels, c)).collect();
    let r = if perm.is_empty() {
        acc.t
    } else {
        acc.t.permute(perm)?.contiguous()?
    };
    if dt.is_float() {
        one(back(r, dt)?)
    } else {
        one(super::super::super::value::Tv::new(
            r.to_dtype(DType::I64)?,
            dt,
        ))
    }
}
