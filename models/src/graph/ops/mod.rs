//! The op table: ATen ops (`aten.X.overload`, training IR and core ATen) and the symbolic
//! `_operator` / `sym_*` nodes, one file per family. Each family's `lookup` maps an op name to
//! its function; an op no family knows makes the program's load fail, naming it.

mod create;
mod index;
mod nn;
mod pointwise;
mod reduce;
mod shape;

use super::args::Args;
use super::value::{Tv, Value};
use super::GraphError;

pub(crate) type Result<T> = std::result::Result<T, GraphError>;

/// One op: resolved arguments in, one value per graph output out.
pub type OpFn = fn(&Args) -> Result<Vec<Value>>;

/// Why an op can never run here (control flow, custom ops), or `None`.
pub fn refusal(op: &str) -> Option<String> {
    if let Some(hop) = op.strip_prefix("higher_order.") {
        return Some(match hop {
            "cond" => "control flow (torch.cond) is not supported".into(),
            "while_loop" => "control flow (while_loop) is not supported".into(),
            "map_impl" | "scan" => "control flow (torch.map/scan) is not supported".into(),
            other => format!("the higher-order op {other} is not supported"),
        });
    }
    let ns = op.split('.').next().unwrap_or("");
    if !matches!(
        ns,
        "aten" | "_operator" | "builtins" | "math" | "torch" | "prims"
    ) {
        return Some(format!(
            "the custom op namespace `{ns}` (torch.library) cannot run without its Python or C++ implementation"
        ));
    }
    None
}

/// The function of an op (`aten.add.Tensor`, `_operator.getitem`), if any family runs it.
pub fn lookup(op: &str) -> Option<OpFn> {
    let mut parts = op.splitn(3, '.');
    let ns = parts.next().unwrap_or("");
    let base = parts.next().unwrap_or("");
    let overload = parts.next().unwrap_or("default");
    match ns {
        "aten" => pointwise::lookup(base, overload)
            .or_else(|| reduce::lookup(base, overload))
            .or_else(|| shape::lookup(base, overload))
            .or_else(|| index::lookup(base, overload))
            .or_else(|| create::lookup(base, overload))
            .or_else(|| nn::lookup(base, overload)),
        "_operator" | "builtins" | "math" | "torch" => shape::lookup_symbolic(op),
        _ => None,
    }
}

/// Every op name the table knows, for docs and `inspect`.
pub fn known() -> Vec<&'static str> {
    let mut v = Vec::new();
    for list in [
        pointwise::NAMES,
        reduce::NAMES,
        shape::NAMES,
        index::NAMES,
        create::NAMES,
        nn::NAMES,
    ] {
        v.extend_from_slice(list);
    }
    v.sort_unstable();
    v
}

/// One tensor result.
pub(crate) fn one(t: Tv) -> Result<Vec<Value>> {
    Ok(vec![Value::Tensor(t)])
}
