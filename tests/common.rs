//! Shared helpers: the converter's fixture helpers (paths, the zoo manifest, reading outputs
//! back; `convert/tests/common.rs`), JSON numbers, errors, running the CLI.

use std::path::Path;

use serde_json::Value;

// One copy of the manifest schema for both crates' tests; the runtime tests use part of it.
#[allow(dead_code)]
#[path = "../convert/tests/common.rs"]
mod zoo;
pub use zoo::*;

/// Every number of a (nested) JSON array, as f32.
pub fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        other => panic!("not a number: {other}"),
    }
}

/// A JSON array of token ids.
pub fn ints(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// ‖a−b‖ / ‖b‖.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let d: f32 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f32>()
        .sqrt();
    let n: f32 = b.iter().map(|y| y * y).sum::<f32>().sqrt();
    d / n.max(1e-30)
}

/// Runs the `torchless` binary built for these tests.
pub fn torchless(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_torchless"))
        .args(args)
        .output()
        .expect("run torchless")
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
