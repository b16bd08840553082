//! The inert object graph a pickle stream builds: scalars by value, everything that has
//! identity (containers, objects, storages, tensors) as a node in a [`Heap`], so that memo
//! references and later mutations (SETITEMS, BUILD) are seen by every holder, as in Python.

use std::collections::HashMap;
use std::rc::Rc;

use crate::tensor::{StorageRef, TensorSpec};

/// Index of a node in the [`Heap`].
pub type NodeId = u32;

/// A pickle value.
#[derive(Debug, Clone)]
pub enum Value {
    /// `None`
    None,
    /// `True` / `False`
    Bool(bool),
    /// An int that fits in 64 bits.
    Int(i64),
    /// A larger int, as decimal digits (or a size note when it is too large to print).
    BigInt(Rc<str>),
    /// A float.
    Float(f64),
    /// A text string.
    Str(Rc<str>),
    /// A byte string (also `bytearray`).
    Bytes(Rc<[u8]>),
    /// A global symbol (`module.name`), never resolved or imported.
    Global(Rc<Global>),
    /// Anything with identity, stored in the heap.
    Ref(NodeId),
}

/// A `module.name` symbol from GLOBAL, STACK_GLOBAL or INST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// The module path.
    pub module: String,
    /// The attribute name.
    pub name: String,
}

impl std::fmt::Display for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// A hashable dict key, used to make a later SETITEM of the same key replace the earlier value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Str(Rc<str>),
    Int(i64),
    Bool(bool),
    None,
}

impl Key {
    fn of(v: &Value) -> Option<Key> {
        match v {
            Value::Str(s) => Some(Key::Str(s.clone())),
            Value::Int(i) => Some(Key::Int(*i)),
            Value::Bool(b) => Some(Key::Bool(*b)),
            Value::None => Some(Key::None),
            _ => None,
        }
    }
}

/// An insertion-ordered dict.
#[derive(Debug, Default, Clone)]
pub struct Dict {
    /// Items in insertion order.
    pub items: Vec<(Value, Value)>,
    index: HashMap<Key, usize>,
}

impl Dict {
    /// Inserts or replaces (for str/int/bool/None keys) an item.
    pub fn insert(&mut self, k: Value, v: Value) {
        match Key::of(&k) {
            Some(key) => match self.index.get(&key) {
                Some(&i) => self.items[i].1 = v,
                None => {
                    self.index.insert(key, self.items.len());
                    self.items.push((k, v));
                }
            },
            None => self.items.push((k, v)),
        }
    }

    /// Looks up a string key.
    pub fn get_str(&self, k: &str) -> Option<&Value> {
        self.index
            .get(&Key::Str(Rc::from(k)))
            .map(|&i| &self.items[i].1)
    }
}

/// An object built without running code: the class symbol, its constructor arguments and the
/// state a BUILD gave it, plus items appended or set on it (list and dict subclasses).
#[derive(Debug, Clone)]
pub struct Object {
    /// The class (or inert constructor) symbol.
    pub class: Rc<Global>,
    /// Arguments of the NEWOBJ / REDUCE.
    pub args: Vec<Value>,
    /// The BUILD state, if any.
    pub state: Option<Value>,
    /// Items added by APPEND(S).
    pub list_items: Vec<Value>,
    /// Items added by SETITEM(S).
    pub dict_items: Dict,
}

/// A tensor safetensors cannot hold, kept so it can be named in a refusal or a skip list.
#[derive(Debug, Clone)]
pub struct Unsupported {
    /// What kind of tensor (`a quantized tensor`, `a complex128 tensor`, ...).
    pub kind: String,
}

/// Everything with identity.
#[derive(Debug, Clone)]
pub enum Node {
    /// A list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dict (also `OrderedDict`).
    Dict(Dict),
    /// A set or frozenset.
    Set(Vec<Value>),
    /// An inert object.
    Object(Object),
    /// A storage returned by the persistent loader.
    Storage(StorageRef),
    /// A tensor rebuilt from a storage.
    Tensor(TensorSpec),
    /// A tensor that cannot be stored.
    Unsupported(Unsupported),
}

/// The arena holding every node of one or more pickle streams, with a size cap.
#[derive(Debug)]
pub struct Heap {
    nodes: Vec<Node>,
    max_nodes: usize,
}

impl Heap {
    /// An empty heap holding at most `max_nodes` nodes.
    pub fn new(max_nodes: usize) -> Self {
        Heap {
            nodes: Vec::new(),
            max_nodes,
        }
    }

    /// Adds a node, or returns `None` when the cap is reached.
    pub fn push(&mut self, node: Node) -> Option<Value> {
        if self.nodes.len() >= self.max_nodes {
            return None;
        }
        let id = NodeId::try_from(self.nodes.len()).ok()?;
        self.nodes.push(node);
        Some(Value::Ref(id))
    }

    /// The node a reference points to.
    pub fn get(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    /// The node a reference points to, mutably.
    pub fn get_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id as usize]
    }

    /// The node behind a value, if it is a reference.
    pub fn node<'a>(&'a self, v: &Value) -> Option<&'a Node> {
        match v {
            Value::Ref(id) => Some(self.get(*id)),
            _ => None,
        }
    }

    /// The items of a list or tuple value.
    pub fn seq<'a>(&'a self, v: &Value) -> Option<&'a [Value]> {
        match self.node(v)? {
            Node::List(items) | Node::Tuple(items) | Node::Set(items) => Some(items),
            _ => None,
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the heap holds no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A short description of a value for reports (`int 3`, `str 'adam'`, `object argparse.Namespace`).
    pub fn describe(&self, v: &Value) -> String {
        match v {
            Value::None => "None".into(),
            Value::Bool(b) => format!("bool {}", if *b { "True" } else { "False" }),
            Value::Int(i) => format!("int {i}"),
            Value::BigInt(s) => format!("int {s}"),
            Value::Float(f) => format!("float {f}"),
            Value::Str(s) => {
                let short: String = s.chars().take(40).collect();
                if short.len() < s.len() {
                    format!("str {short:?}…")
                } else {
                    format!("str {short:?}")
                }
            }
            Value::Bytes(b) => format!("bytes ({} bytes)", b.len()),
            Value::Global(g) => format!("global {g}"),
            Value::Ref(id) => match self.get(*id) {
                Node::List(items) => format!("list ({} items)", items.len()),
                Node::Tuple(items) => format!("tuple ({} items)", items.len()),
                Node::Dict(d) => format!("dict ({} items)", d.items.len()),
                Node::Set(items) => format!("set ({} items)", items.len()),
                Node::Object(o) => format!("object {}", o.class),
                Node::Storage(s) => format!("raw storage ({} bytes)", s.byte_len),
                Node::Tensor(t) => format!("tensor {} {:?}", t.dtype, t.shape),
                Node::Unsupported(u) => u.kind.clone(),
            },
        }
    }
}
