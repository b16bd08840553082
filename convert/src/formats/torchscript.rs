//! TorchScript archives (`torch.jit.save`): `data.pkl` holds the module tree as `__torch__.*`
//! objects whose BUILD state maps attribute names to values; tensors live in `data/<key>` as in
//! `torch.save` archives. Which attributes are parameters and buffers is declared in the
//! archive's generated code (`code/__torch__/…py`: `__parameters__ = ["weight", ]`), so the
//! names come out as `state_dict()` gives them. `constants.pkl` is not part of the state and is
//! ignored.

use std::collections::HashMap;

use super::archive::Archive;
use super::torch_zip;
use crate::checkpoint::{Checkpoint, Dropped, Entry, EntryKind};
use crate::error::{Error, Result};
use crate::pickle::{Dict, Heap, Node, Value};
use crate::tree::{holds_tensor, join, key_string, MAX_DEPTH};
use crate::OpenOptions;

/// Parameter and buffer declarations of one scripted class.
#[derive(Debug, Default, Clone)]
struct Decl {
    parameters: Vec<String>,
    buffers: Vec<String>,
}

/// Whether a zip archive is a TorchScript archive.
pub(crate) fn looks_torchscript(archive: &Archive<'_>) -> bool {
    archive.has("data.pkl")
        && (archive.has("constants.pkl") || archive.names_under("code/").next().is_some())
}

/// Parses `["a", "b", ]` into names.
fn parse_list(s: &str) -> Vec<String> {
    s.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|x| x.trim().trim_matches('"').trim_matches('\'').to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Collects class declarations from every `code/**.py` record: `module.Class -> Decl`.
fn declarations(archive: &Archive<'_>) -> Result<HashMap<String, Decl>> {
    let mut out = HashMap::new();
    let names: Vec<String> = archive
        .names_under("code/")
        .filter(|n| n.ends_with(".py"))
        .map(str::to_string)
        .collect();
    for name in names {
        let module = name
            .trim_start_matches("code/")
            .trim_end_matches(".py")
            .replace('/', ".");
        let text = archive.read_text(&name)?;
        let mut current: Option<(String, Decl)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("class ") {
                if let Some((cls, decl)) = current.take() {
                    out.insert(format!("{module}.{cls}"), decl);
                }
                let cls: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                current = Some((cls, Decl::default()));
            } else if let Some((_, decl)) = current.as_mut() {
                let t = line.trim();
                if let Some(v) = t.strip_prefix("__parameters__ =") {
                    decl.parameters = parse_list(v);
                } else if let Some(v) = t.strip_prefix("__buffers__ =") {
                    decl.buffers = parse_list(v);
                }
            }
        }
        if let Some((cls, decl)) = current.take() {
            out.insert(format!("{module}.{cls}"), decl);
        }
    }
    Ok(out)
}

struct Walk<'a> {
    heap: &'a Heap,
    decls: &'a HashMap<String, Decl>,
    out: &'a mut Checkpoint,
    /// Shared submodules are named once per path (as `state_dict()` does): bounded.
    budget: crate::tree::WalkBudget,
}

/// The class name and attribute dict of a scripted object.
fn state_of<'h>(heap: &'h Heap, v: &Value) -> Option<(String, &'h Dict)> {
    match heap.node(v)? {
        Node::Object(o) => match o.state.as_ref().and_then(|s| heap.node(s)) {
            Some(Node::Dict(d)) => Some((o.class.to_string(), d)),
            _ => None,
        },
        _ => None,
    }
}

impl Walk<'_> {
    fn module(&mut self, v: &Value, path: &str, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::format(path.to_string(), "modules nested too deeply"));
        }
        self.budget.charge(false, path)?;
        let Some((class, state)) = state_of(self.heap, v) else {
            self.out.dropped.push(Dropped {
                path: path.to_string(),
                what: self.heap.describe(v),
            });
            return Ok(());
        };
        let decl = self.decls.get(&class).cloned().ok_or_else(|| {
            Error::format(
                path.to_string(),
                format!("class {class} has no declaration in the archive's code/ folder"),
            )
        })?;
        for name in decl.parameters.iter().chain(&decl.buffers) {
            let p = join(path, name);
            self.budget.charge(true, &p)?;
            match state.get_str(name) {
                None | Some(Value::None) => {}
                Some(t) => match self.heap.node(t) {
                    Some(Node::Tensor(spec)) => self.out.entries.push(Entry {
                        name: p,
                        kind: EntryKind::Tensor(spec.clone()),
                    }),
                    Some(Node::Unsupported(u)) => self.out.entries.push(Entry {
                        name: p,
                        kind: EntryKind::Unsupported(u.kind.clone()),
                    }),
                    _ => {
                        return Err(Error::format(
                            p,
                            format!(
                                "declared as a parameter or buffer but holds {}",
                                self.heap.describe(t)
                            ),
                        ))
                    }
                },
            }
        }
        for (k, item) in &state.items {
            let Some(k) = key_string(k) else { continue };
            if decl.parameters.contains(&k) || decl.buffers.contains(&k) {
                continue;
            }
            let p = join(path, &k);
            match state_of(self.heap, item) {
                Some((class, _)) if self.decls.contains_key(&class) => {
                    self.module(item, &p, depth + 1)?;
                }
                Some(_) => self.out.dropped.push(Dropped {
                    path: p,
                    what: format!(
                        "{} (not a module: its tensors are not in state_dict)",
                        self.heap.describe(item)
                    ),
                }),
                None => match self.heap.node(item) {
                    Some(Node::Object(o)) if holds_tensor(self.heap, item, 0) => {
                        self.out.entries.push(Entry {
                            name: p,
                            kind: EntryKind::Unsupported(format!(
                                "a TorchScript object of class {} with custom state",
                                o.class
                            )),
                        })
                    }
                    _ => self.out.dropped.push(Dropped {
                        path: p,
                        what: self.heap.describe(item),
                    }),
                },
            }
        }
        Ok(())
    }
}

/// Reads a TorchScript archive into `ckpt`.
pub(crate) fn read(
    ckpt: &mut Checkpoint,
    archive: &Archive<'_>,
    options: &OpenOptions,
) -> Result<()> {
    let decls = declarations(archive)?;
    let (heap, root) = torch_zip::unpickle_record(ckpt, archive, "data.pkl", options)?;
    if let Some((_, state)) = state_of(&heap, &root) {
        ckpt.top_keys = state
            .items
            .iter()
            .filter_map(|(k, _)| key_string(k))
            .collect();
    }
    let mut w = Walk {
        heap: &heap,
        decls: &decls,
        out: ckpt,
        budget: crate::tree::WalkBudget::new(&heap),
    };
    w.module(&root, "", 0)
}
