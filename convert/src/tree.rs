//! Flattens an unpickled object graph into dotted tensor names, the way `state_dict()` and
//! nested containers name them: dict keys and list indices joined by dots, `nn.Module` objects
//! through their `_parameters`, `_buffers` (persistent only) and `_modules`. Everything else is
//! listed as dropped, never silently ignored.

use std::collections::{HashMap, HashSet};

use crate::checkpoint::{Checkpoint, Dropped, Entry, EntryKind};
use crate::error::{Error, Result};
use crate::pickle::{Dict, Heap, Node, NodeId, Object, Value};

/// Deepest container nesting the walk follows.
pub(crate) const MAX_DEPTH: usize = 512;

/// The walk of one object graph is bounded relative to the graph itself. A tree is walked in
/// one visit per value; shared sub-objects are walked once per path, as `state_dict()` names a
/// tied module's tensors under each path, but a small graph of shared lists can stand for 2^40
/// paths. Sub-objects holding no tensor are walked once (later paths list them as "the same
/// object"), so only tensor-holding sharing repeats work: past [`VISITS_PER_VALUE`] visits per
/// value of the graph, or [`NAMES_PER_NODE`] tensor names per node, the file is refused.
pub(crate) const VISITS_PER_VALUE: u64 = 4;
/// Tensor names allowed per heap node (each tensor is one node; tied names add a few).
pub(crate) const NAMES_PER_NODE: u64 = 4;
/// Visits and names every graph may make whatever its size.
pub(crate) const WALK_SLACK: u64 = 4096;

/// The name-walk budget of one object graph.
#[derive(Debug)]
pub(crate) struct WalkBudget {
    names: u64,
    visits: u64,
    max_names: u64,
    max_visits: u64,
}

impl WalkBudget {
    /// The budget for the graph in `heap`: its nodes and the values they hold.
    pub(crate) fn new(heap: &Heap) -> WalkBudget {
        let nodes = heap.len() as u64;
        let values: u64 = (0..heap.len())
            .filter_map(|i| NodeId::try_from(i).ok())
            .map(|id| match heap.get(id) {
                Node::List(v) | Node::Tuple(v) | Node::Set(v) => v.len() as u64,
                Node::Dict(d) => 2 * d.items.len() as u64,
                Node::Object(o) => {
                    (o.args.len() + o.list_items.len() + 2 * o.dict_items.items.len()) as u64
                        + u64::from(o.state.is_some())
                }
                _ => 0,
            })
            .sum();
        WalkBudget {
            names: 0,
            visits: 0,
            max_names: nodes.saturating_mul(NAMES_PER_NODE) + WALK_SLACK,
            max_visits: (values + nodes).saturating_mul(VISITS_PER_VALUE) + WALK_SLACK,
        }
    }

    /// Counts one visit, and one name when `named`.
    pub(crate) fn charge(&mut self, named: bool, path: &str) -> Result<()> {
        self.visits += 1;
        self.names += u64::from(named);
        let (what, needed, limit) = if self.names > self.max_names {
            (
                "names (tensor paths through shared sub-objects)",
                self.names,
                self.max_names,
            )
        } else if self.visits > self.max_visits {
            (
                "object visits (paths through shared sub-objects)",
                self.visits,
                self.max_visits,
            )
        } else {
            return Ok(());
        };
        let mut at: String = path.chars().take(120).collect();
        if at.len() < path.len() {
            at.push('…');
        }
        Err(Error::Budget {
            file: format!("the object graph (at `{at}`)"),
            what: what.into(),
            needed,
            limit,
        })
    }
}

/// Name used for a checkpoint whose root is a single tensor.
pub const ROOT_TENSOR_NAME: &str = "tensor";

/// Walks `root` and appends its tensors and dropped values to `out`.
pub(crate) fn flatten(heap: &Heap, root: &Value, out: &mut Checkpoint) -> Result<()> {
    if let Some(Node::Dict(d)) = heap.node(root) {
        out.top_keys = d.items.iter().filter_map(|(k, _)| key_string(k)).collect();
    }
    let mut w = Walker {
        heap,
        out,
        on_path: HashSet::new(),
        tensorless: HashMap::new(),
        budget: WalkBudget::new(heap),
    };
    w.value(root, "", 0)
}

/// A dict key as a name component, if it is a scalar.
pub(crate) fn key_string(k: &Value) -> Option<String> {
    match k {
        Value::Str(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::BigInt(s) => Some(s.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        Value::None => Some("None".into()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// Joins a prefix and a component with a dot.
pub(crate) fn join(prefix: &str, part: &str) -> String {
    if prefix.is_empty() {
        part.to_string()
    } else {
        format!("{prefix}.{part}")
    }
}

struct Walker<'a> {
    heap: &'a Heap,
    out: &'a mut Checkpoint,
    on_path: HashSet<NodeId>,
    /// Containers already walked that hold no tensor, with the path they were listed under:
    /// a second path to one is listed once, not walked again.
    tensorless: HashMap<NodeId, String>,
    budget: WalkBudget,
}

impl Walker<'_> {
    fn drop_value(&mut self, path: &str, v: &Value) {
        self.out.dropped.push(Dropped {
            path: if path.is_empty() {
                "<root>".into()
            } else {
                path.to_string()
            },
            what: self.heap.describe(v),
        });
    }

    fn value(&mut self, v: &Value, path: &str, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::format(
                path.to_string(),
                format!("containers nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.budget.charge(false, path)?;
        let id = match v {
            Value::Ref(id) => *id,
            _ => {
                self.drop_value(path, v);
                return Ok(());
            }
        };
        if let Some(first) = self.tensorless.get(&id) {
            let what = format!("{} (the same object as `{first}`)", self.heap.describe(v));
            self.out.dropped.push(Dropped {
                path: path.to_string(),
                what,
            });
            return Ok(());
        }
        if !self.on_path.insert(id) {
            // A container that contains itself: its second appearance holds nothing new.
            self.drop_value(path, v);
            return Ok(());
        }
        let entries = self.out.entries.len();
        let r = self.node(id, v, path, depth);
        self.on_path.remove(&id);
        if r.is_ok() && self.out.entries.len() == entries {
            self.tensorless.insert(id, path.to_string());
        }
        r
    }

    fn node(&mut self, id: NodeId, v: &Value, path: &str, depth: usize) -> Result<()> {
        let name = || {
            if depth == 0 {
                ROOT_TENSOR_NAME.to_string()
            } else {
                path.to_string()
            }
        };
        if matches!(self.heap.get(id), Node::Tensor(_) | Node::Unsupported(_)) {
            self.budget.charge(true, path)?;
        }
        match self.heap.get(id) {
            Node::Tensor(spec) => self.out.entries.push(Entry {
                name: name(),
                kind: EntryKind::Tensor(spec.clone()),
            }),
            Node::Unsupported(u) => self.out.entries.push(Entry {
                name: name(),
                kind: EntryKind::Unsupported(u.kind.clone()),
            }),
            Node::Dict(d) => self.dict(d, path, depth)?,
            Node::List(items) | Node::Tuple(items) | Node::Set(items) => {
                if items.is_empty() {
                    self.drop_value(path, v);
                }
                for (i, item) in items.iter().enumerate() {
                    self.value(item, &join(path, &i.to_string()), depth + 1)?;
                }
            }
            Node::Object(o) => self.object(o, v, path, depth)?,
            Node::Storage(_) => self.drop_value(path, v),
        }
        Ok(())
    }

    fn dict(&mut self, d: &Dict, path: &str, depth: usize) -> Result<()> {
        for (k, item) in &d.items {
            match key_string(k) {
                Some(k) => self.value(item, &join(path, &k), depth + 1)?,
                None => {
                    let p = join(path, &format!("<{}>", self.heap.describe(k)));
                    self.drop_value(&p, item);
                }
            }
        }
        Ok(())
    }

    fn object(&mut self, o: &Object, v: &Value, path: &str, depth: usize) -> Result<()> {
        let state = o.state.as_ref().and_then(|s| match self.heap.node(s) {
            Some(Node::Dict(d)) => Some(d),
            // (dict_state, slot_state) pairs: use the dict part.
            Some(Node::Tuple(t)) => t.first().and_then(|f| match self.heap.node(f) {
                Some(Node::Dict(d)) => Some(d),
                _ => None,
            }),
            _ => None,
        });
        if let Some(state) = state {
            if state.get_str("_parameters").is_some() && state.get_str("_modules").is_some() {
                return self.module(state, path, depth);
            }
            self.dict(state, path, depth)?;
        } else if o.dict_items.items.is_empty() && o.list_items.is_empty() {
            self.drop_value(path, v);
        }
        self.dict(&o.dict_items, path, depth)?;
        for (i, item) in o.list_items.iter().enumerate() {
            self.value(item, &join(path, &i.to_string()), depth + 1)?;
        }
        Ok(())
    }

    /// `nn.Module.state_dict()`: parameters, persistent buffers, then submodules.
    fn module(&mut self, state: &Dict, path: &str, depth: usize) -> Result<()> {
        let non_persistent: HashSet<String> = state
            .get_str("_non_persistent_buffers_set")
            .and_then(|s| self.heap.seq(s))
            .map(|items| items.iter().filter_map(key_string).collect())
            .unwrap_or_default();
        for field in ["_parameters", "_buffers"] {
            let Some(Node::Dict(d)) = state.get_str(field).and_then(|v| self.heap.node(v)) else {
                continue;
            };
            for (k, item) in &d.items {
                let Some(k) = key_string(k) else { continue };
                let p = join(path, &k);
                if matches!(item, Value::None) {
                    continue;
                }
                if field == "_buffers" && non_persistent.contains(&k) {
                    self.out.dropped.push(Dropped {
                        path: p,
                        what: format!("non-persistent buffer ({})", self.heap.describe(item)),
                    });
                    continue;
                }
                self.value(item, &p, depth + 1)?;
            }
        }
        if let Some(Node::Dict(mods)) = state.get_str("_modules").and_then(|v| self.heap.node(v)) {
            for (k, m) in &mods.items {
                let Some(k) = key_string(k) else { continue };
                if matches!(m, Value::None) {
                    continue;
                }
                self.value(m, &join(path, &k), depth + 1)?;
            }
        }
        // Tensors held as plain attributes are not part of state_dict(): list them.
        for (k, item) in &state.items {
            let Some(k) = key_string(k) else { continue };
            if k.starts_with('_') || k == "training" {
                continue;
            }
            if holds_tensor(self.heap, item, 0) {
                self.out.dropped.push(Dropped {
                    path: join(path, &k),
                    what: format!(
                        "module attribute that is not a parameter or buffer ({})",
                        self.heap.describe(item)
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Whether a value holds a tensor within a few levels (objects' state and items included).
pub(crate) fn holds_tensor(heap: &Heap, v: &Value, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    let any = |items: &[Value]| items.iter().any(|i| holds_tensor(heap, i, depth + 1));
    match heap.node(v) {
        Some(Node::Tensor(_) | Node::Unsupported(_) | Node::Storage(_)) => true,
        Some(Node::List(items) | Node::Tuple(items) | Node::Set(items)) => any(items),
        Some(Node::Dict(d)) => d
            .items
            .iter()
            .any(|(_, i)| holds_tensor(heap, i, depth + 1)),
        Some(Node::Object(o)) => {
            o.state
                .as_ref()
                .is_some_and(|s| holds_tensor(heap, s, depth + 1))
                || any(&o.list_items)
                || o.dict_items
                    .items
                    .iter()
                    .any(|(_, i)| holds_tensor(heap, i, depth + 1))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Format;
    use crate::pickle::Unsupported;

    #[test]
    fn regression_shared_lists_naming_2_pow_40_paths_are_refused_at_once() {
        let mut heap = Heap::new(1 << 10);
        let mut v = heap
            .push(Node::Unsupported(Unsupported { kind: "x".into() }))
            .unwrap();
        for _ in 0..40 {
            v = heap.push(Node::List(vec![v.clone(), v])).unwrap();
        }
        let mut ckpt = Checkpoint::new(Format::Zip);
        let start = std::time::Instant::now();
        let err = flatten(&heap, &v, &mut ckpt).unwrap_err().to_string();
        assert!(err.contains("budget"), "{err}");
        // Not a timing assertion: a hang guard far above the milliseconds this takes.
        assert!(start.elapsed().as_secs() < 60);
        assert!(ckpt.entries.len() < 1 << 16);
    }

    #[test]
    fn many_scalars_and_tied_tensors_stay_within_the_walk_budget() {
        // A vocabulary-like dict of 300k scalars, and a tensor reached through two paths.
        let mut heap = Heap::new(1 << 10);
        let mut d = Dict::default();
        for i in 0..300_000 {
            d.insert(Value::Str(format!("tok{i}").into()), Value::Int(i));
        }
        let vocab = heap.push(Node::Dict(d)).unwrap();
        let t = heap
            .push(Node::Unsupported(Unsupported { kind: "x".into() }))
            .unwrap();
        let mut root = Dict::default();
        root.insert(Value::Str("vocab".into()), vocab);
        root.insert(Value::Str("a".into()), t.clone());
        root.insert(Value::Str("b".into()), t);
        let root = heap.push(Node::Dict(root)).unwrap();
        let mut ckpt = Checkpoint::new(Format::Zip);
        flatten(&heap, &root, &mut ckpt).unwrap();
        assert_eq!(ckpt.entries.len(), 2);
        assert_eq!(ckpt.dropped.len(), 300_000);
    }
}
