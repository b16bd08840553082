//! A pickle reader that never executes: opcodes build an inert graph, and calls are resolved by
//! an allow-list (see [`policy`]).

pub mod machine;
pub mod policy;
pub mod value;

pub use machine::{unpickle, Limits, NoPersistentIds, Options, PersistentLoad};
pub use value::{Dict, Global, Heap, Node, NodeId, Object, Unsupported, Value};
