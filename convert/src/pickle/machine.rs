//! The pickle machine: reads protocol 0–5 opcodes and builds an inert [`Value`] graph.
//!
//! Nothing is imported or executed. Globals become symbols; calls are resolved by
//! [`policy`](super::policy): tensor rebuilders and containers are interpreted, a few harmless
//! constructors become opaque objects, and any other call refuses the whole stream. Every length
//! is checked against the bytes present, and the stack, memo, MARK depth and node count are capped.

use std::collections::HashMap;
use std::rc::Rc;

use super::policy::{self, Callable};
use super::value::{Dict, Global, Heap, Node, Object, Unsupported, Value};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::TensorSpec;

/// Caps that keep a hostile pickle from exhausting memory or time.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most values on the stack at once.
    pub max_stack: usize,
    /// Most memo entries.
    pub max_memo: usize,
    /// Deepest MARK nesting.
    pub max_marks: usize,
    /// Most heap nodes (containers, objects, tensors) per heap.
    pub max_nodes: usize,
    /// Most values copied by interpreted calls (`list(x)`, `dict(pairs)`, call arguments)
    /// per stream: each copy costs memory the stream's own bytes did not pay for.
    pub max_copied_cells: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stack: 1 << 24,
            max_memo: 1 << 24,
            max_marks: 10_000,
            max_nodes: 1 << 24,
            max_copied_cells: 1 << 24,
        }
    }
}

/// Resolves persistent ids (BINPERSID / PERSID) to storages or other values.
pub trait PersistentLoad {
    /// Returns the value a persistent id stands for, adding nodes to `heap` as needed.
    fn load(&mut self, pid: &Value, heap: &mut Heap) -> std::result::Result<Value, String>;
}

/// A loader for streams that must not contain persistent ids.
pub struct NoPersistentIds;

impl PersistentLoad for NoPersistentIds {
    fn load(&mut self, _pid: &Value, _heap: &mut Heap) -> std::result::Result<Value, String> {
        Err("persistent id in a stream that cannot hold one".into())
    }
}

/// Options for one run of the machine.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Hostile-input caps.
    pub limits: Limits,
    /// Extra `module.name` globals the user allows to be called as inert constructors.
    pub allow_globals: Vec<String>,
}

/// Unpickles one stream starting at `start`; returns the root value and the offset after STOP.
/// `name` identifies the stream in errors.
pub fn unpickle(
    data: &[u8],
    start: usize,
    name: &str,
    heap: &mut Heap,
    loader: &mut dyn PersistentLoad,
    options: &Options,
) -> Result<(Value, usize)> {
    let mut m = Machine {
        data,
        pos: start,
        op_pos: start,
        name,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        copied: 0,
        heap,
        loader,
        options,
    };
    let root = m.run()?;
    Ok((root, m.pos))
}

struct Machine<'a, 'h> {
    data: &'a [u8],
    pos: usize,
    op_pos: usize,
    name: &'a str,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Values copied by interpreted calls so far (see [`Limits::max_copied_cells`]).
    copied: usize,
    heap: &'h mut Heap,
    loader: &'h mut dyn PersistentLoad,
    options: &'a Options,
}

type R<T> = Result<T>;

impl Machine<'_, '_> {
    fn err(&self, reason: impl Into<String>) -> Error {
        Error::Pickle {
            file: self.name.to_string(),
            offset: self.op_pos,
            reason: reason.into(),
        }
    }

    fn refuse(&self, global: &Global, opcode: &'static str) -> Error {
        Error::Refused {
            file: self.name.to_string(),
            global: global.to_string(),
            opcode,
            offset: self.op_pos,
        }
    }

    fn take(&mut self, n: usize) -> R<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                self.err(format!(
                    "needs {n} more bytes but the stream ends at byte {}",
                    self.data.len()
                ))
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> R<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn len_u32(&mut self) -> R<usize> {
        Ok(u32::from_le_bytes(self.le()?) as usize)
    }

    fn len_u64(&mut self) -> R<usize> {
        let n = u64::from_le_bytes(self.le()?);
        usize::try_from(n).map_err(|_| self.err(format!("length {n} does not fit in memory")))
    }

    fn line(&mut self) -> R<&[u8]> {
        let rest = &self.data[self.pos..];
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("unterminated text line"))?;
        let s = &self.data[self.pos..self.pos + nl];
        self.pos += nl + 1;
        Ok(s)
    }

    fn line_str(&mut self) -> R<String> {
        let l = self.line()?;
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        String::from_utf8(l.to_vec()).map_err(|_| self.err("text line is not UTF-8"))
    }

    fn push(&mut self, v: Value) -> R<()> {
        if self.stack.len() >= self.options.limits.max_stack {
            return Err(self.err("stack limit exceeded"));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> R<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("pop from an empty stack"));
        }
        Ok(self.stack.pop().expect("length checked above"))
    }

    fn top(&self) -> R<&Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("read from an empty stack"));
        }
        Ok(self.stack.last().expect("length checked above"))
    }

    fn pop_mark(&mut self) -> R<Vec<Value>> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.err("no MARK on the stack"))?;
        Ok(self.stack.split_off(m))
    }

    /// Charges `n` copied values against the stream's copy budget.
    fn copy_cells(&mut self, n: usize) -> R<()> {
        self.copied = self.copied.saturating_add(n);
        if self.copied > self.options.limits.max_copied_cells {
            return Err(Error::Budget {
                file: self.name.to_string(),
                what: "pickle values copied by calls (list(x), dict(pairs), arguments)".into(),
                needed: self.copied as u64,
                limit: self.options.limits.max_copied_cells as u64,
            });
        }
        Ok(())
    }

    fn node(&mut self, n: Node) -> R<Value> {
        self.heap
            .push(n)
            .ok_or_else(|| self.err("object count limit exceeded"))
    }

    fn memo_put(&mut self, idx: u32) -> R<()> {
        let v = self.top()?.clone();
        if self.memo.len() >= self.options.limits.max_memo && !self.memo.contains_key(&idx) {
            return Err(self.err("memo limit exceeded"));
        }
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> R<()> {
        let v = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| self.err(format!("memo entry {idx} was never stored")))?;
        self.push(v)
    }

    fn text_int(&mut self, long: bool) -> R<Value> {
        let s = self.line_str()?;
        let s = if long {
            s.strip_suffix('L').unwrap_or(&s).to_string()
        } else {
            s
        };
        match s.as_str() {
            "00" if !long => return Ok(Value::Bool(false)),
            "01" if !long => return Ok(Value::Bool(true)),
            _ => {}
        }
        if let Ok(i) = s.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        let digits = s.strip_prefix('-').unwrap_or(&s);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Value::BigInt(Rc::from(s.as_str())))
        } else {
            Err(self.err(format!("bad integer literal ({} bytes)", s.len())))
        }
    }

    fn run(&mut self) -> R<Value> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8()?;
            match op {
                b'.' => return self.pop(), // STOP
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(self.err(format!("unsupported pickle protocol {p}")));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: the length only groups opcodes
                }
                b'(' => {
                    if self.marks.len() >= self.options.limits.max_marks {
                        return Err(self.err("MARK nesting limit exceeded"));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                // Constants.
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'I' => {
                    let v = self.text_int(false)?;
                    self.push(v)?;
                }
                b'L' => {
                    let v = self.text_int(true)?;
                    self.push(v)?;
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.push(Value::Int(v.into()))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v.into()))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.push(Value::Int(v.into()))?;
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let v = self.long_bytes(n)?;
                    self.push(v)?;
                }
                0x8b => {
                    let n = self.len_u32()?;
                    let v = self.long_bytes(n)?;
                    self.push(v)?;
                }
                b'F' => {
                    let s = self.line_str()?;
                    let f = s
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| self.err(format!("bad float literal ({} bytes)", s.len())))?;
                    self.push(Value::Float(f))?;
                }
                b'G' => {
                    let f = f64::from_be_bytes(self.le()?);
                    self.push(Value::Float(f))?;
                }
                // Strings and bytes.
                b'S' => {
                    let l = self.line()?.to_vec();
                    let b = unquote_string(&l).ok_or_else(|| self.err("bad STRING literal"))?;
                    self.push(bytes_to_str_value(b))?;
                }
                b'T' => {
                    let n = self.len_u32()?;
                    let b = self.take(n)?.to_vec();
                    self.push(bytes_to_str_value(b))?;
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(bytes_to_str_value(b))?;
                }
                b'V' => {
                    let l = self.line()?.to_vec();
                    let s = raw_unicode_escape(&l).ok_or_else(|| self.err("bad UNICODE literal"))?;
                    self.push(Value::Str(Rc::from(s)))?;
                }
                b'X' => {
                    let n = self.len_u32()?;
                    self.push_utf8(n)?;
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    self.push_utf8(n)?;
                }
                0x8d => {
                    let n = self.len_u64()?;
                    self.push_utf8(n)?;
                }
                b'B' => {
                    let n = self.len_u32()?;
                    let b = Rc::from(self.take(n)?);
                    self.push(Value::Bytes(b))?;
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let b = Rc::from(self.take(n)?);
                    self.push(Value::Bytes(b))?;
                }
                0x8e | 0x96 => {
                    let n = self.len_u64()?;
                    let b = Rc::from(self.take(n)?);
                    self.push(Value::Bytes(b))?;
                }
                0x97 | 0x98 => {
                    return Err(self.err("out-of-band buffers (NEXT_BUFFER) are not supported"))
                }
                // Containers.
                b']' => {
                    let v = self.node(Node::List(Vec::new()))?;
                    self.push(v)?;
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let v = self.node(Node::List(items))?;
                    self.push(v)?;
                }
                b')' => {
                    let v = self.node(Node::Tuple(Vec::new()))?;
                    self.push(v)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let v = self.node(Node::Tuple(items))?;
                    self.push(v)?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return Err(self.err("TUPLE needs more items than the stack holds"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let v = self.node(Node::Tuple(items))?;
                    self.push(v)?;
                }
                b'}' => {
                    let v = self.node(Node::Dict(Dict::default()))?;
                    self.push(v)?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let mut d = Dict::default();
                    self.fill_dict(&mut d, items)?;
                    let v = self.node(Node::Dict(d))?;
                    self.push(v)?;
                }
                0x8f => {
                    let v = self.node(Node::Set(Vec::new()))?;
                    self.push(v)?;
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    let v = self.node(Node::Set(items))?;
                    self.push(v)?;
                }
                b'a' => {
                    let item = self.pop()?;
                    self.append(vec![item])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    match self.heap_node_mut(&target) {
                        Some(Node::Set(s)) => s.extend(items),
                        _ => return Err(self.err("ADDITEMS on something that is not a set")),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.setitems(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.setitems(items)?;
                }
                // Memo.
                b'p' => {
                    let s = self.line_str()?;
                    let i = s
                        .parse::<u32>()
                        .map_err(|_| self.err(format!("bad PUT index ({} bytes)", s.len())))?;
                    self.memo_put(i)?;
                }
                b'q' => {
                    let i = self.u8()?.into();
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = u32::from_le_bytes(self.le()?);
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len())
                        .map_err(|_| self.err("memo limit exceeded"))?;
                    self.memo_put(i)?;
                }
                b'g' => {
                    let s = self.line_str()?;
                    let i = s
                        .parse::<u32>()
                        .map_err(|_| self.err(format!("bad GET index ({} bytes)", s.len())))?;
                    self.memo_get(i)?;
                }
                b'h' => {
                    let i = self.u8()?.into();
                    self.memo_get(i)?;
                }
                b'j' => {
                    let i = u32::from_le_bytes(self.le()?);
                    self.memo_get(i)?;
                }
                // Globals, calls and objects.
                b'c' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let g = self.global(module, name, "GLOBAL")?;
                    self.push(g)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => {
                            let g = self.global(m.to_string(), n.to_string(), "STACK_GLOBAL")?;
                            self.push(g)?;
                        }
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                0x82..=0x84 => {
                    return Err(self.err(
                        "extension-registry globals (EXT1/2/4) are not supported: they can name any callable",
                    ))
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.call(&func, &args, "REDUCE", 0)?;
                    self.push(v)?;
                }
                b'i' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let func = self.global(module, name, "INST")?;
                    let args = self.pop_mark()?;
                    let args = self.node(Node::Tuple(args))?;
                    let v = self.call(&func, &args, "INST", 0)?;
                    self.push(v)?;
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err(self.err("OBJ without a class"));
                    }
                    let func = items.remove(0);
                    let args = self.node(Node::Tuple(items))?;
                    let v = self.call(&func, &args, "OBJ", 0)?;
                    self.push(v)?;
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.new_object(cls, args, "NEWOBJ")?;
                    self.push(v)?;
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.new_object(cls, args, "NEWOBJ_EX")?;
                    self.push(v)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?.clone();
                    if let Value::Global(g) = &target {
                        // BUILD on a class or function calls its `__setstate__` (or sets
                        // attributes on it): judged as a call, and no allowed global needs it.
                        return Err(self.refuse(g, "BUILD"));
                    }
                    if let Some(Node::Object(o)) = self.heap_node_mut(&target) {
                        o.state = Some(state);
                    }
                    // BUILD on tensors and containers sets Python attributes, which no
                    // state_dict holds: the state is ignored.
                }
                b'P' => {
                    let pid = Value::Str(Rc::from(self.line_str()?));
                    let v = self.persistent(pid)?;
                    self.push(v)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(pid)?;
                    self.push(v)?;
                }
                other => return Err(self.err(format!("unknown opcode 0x{other:02x}"))),
            }
        }
    }

    /// A global symbol, resolved as Python's `find_class` would (aliases, dotted names); one
    /// that reaches a code-running global, by any of the paths it could stand for, refuses the
    /// stream at once.
    fn global(&self, module: String, name: String, opcode: &'static str) -> R<Value> {
        let r = policy::resolve(&module, &name);
        let written = Global { module, name };
        if let Some(target) = r.runs_code {
            let shown = written.to_string();
            let global = if target == shown {
                shown
            } else {
                format!("{target}` (written as `{shown}")
            };
            return Err(Error::Refused {
                file: self.name.to_string(),
                global,
                opcode,
                offset: self.op_pos,
            });
        }
        let (module, name) = r.canonical;
        Ok(Value::Global(Rc::new(Global { module, name })))
    }

    fn push_utf8(&mut self, n: usize) -> R<()> {
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map(Rc::from).or_else(|_| {
            // Python writes lone surrogates with "surrogatepass"; keep the text readable.
            Ok::<_, Error>(Rc::from(String::from_utf8_lossy(b).as_ref()))
        })?;
        self.push(Value::Str(s))
    }

    fn long_bytes(&mut self, n: usize) -> R<Value> {
        let b = self.take(n)?;
        if n == 0 {
            return Ok(Value::Int(0));
        }
        if n <= 8 {
            let neg = b[n - 1] & 0x80 != 0;
            let mut a = if neg { [0xffu8; 8] } else { [0u8; 8] };
            a[..n].copy_from_slice(b);
            return Ok(Value::Int(i64::from_le_bytes(a)));
        }
        Ok(Value::BigInt(Rc::from(le_twos_complement_to_decimal(b))))
    }

    fn heap_node_mut(&mut self, v: &Value) -> Option<&mut Node> {
        match v {
            Value::Ref(id) => Some(self.heap.get_mut(*id)),
            _ => None,
        }
    }

    fn fill_dict(&self, d: &mut Dict, items: Vec<Value>) -> R<()> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("odd number of items for a dict"));
        }
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.insert(k, v);
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> R<()> {
        let target = self.top()?.clone();
        match self.heap_node_mut(&target) {
            Some(Node::List(l)) => l.extend(items),
            Some(Node::Object(o)) => o.list_items.extend(items),
            Some(Node::Set(s)) => s.extend(items),
            _ => return Err(self.err("APPEND on something that is not a list")),
        }
        Ok(())
    }

    fn setitems(&mut self, items: Vec<Value>) -> R<()> {
        let target = self.top()?.clone();
        let mut d = match self.heap_node_mut(&target) {
            Some(Node::Dict(d)) => std::mem::take(d),
            Some(Node::Object(o)) => std::mem::take(&mut o.dict_items),
            _ => return Err(self.err("SETITEM on something that is not a dict")),
        };
        let r = self.fill_dict(&mut d, items);
        match self.heap_node_mut(&target) {
            Some(Node::Dict(slot)) => *slot = d,
            Some(Node::Object(o)) => o.dict_items = d,
            _ => unreachable!("target kind checked above"),
        }
        r
    }

    fn persistent(&mut self, pid: Value) -> R<Value> {
        self.loader
            .load(&pid, self.heap)
            .map_err(|reason| self.err(format!("persistent id: {reason}")))
    }

    fn global_of(&self, v: &Value, what: &str) -> R<Rc<Global>> {
        match v {
            Value::Global(g) => Ok(g.clone()),
            other => Err(self.err(format!(
                "{what} of {} (only globals can be called)",
                self.heap.describe(other)
            ))),
        }
    }

    fn new_object(&mut self, cls: Value, args: Value, opcode: &'static str) -> R<Value> {
        let g = self.global_of(&cls, opcode)?;
        if !policy::class_allowed(&g.module, &g.name) {
            return Err(self.refuse(&g, opcode));
        }
        let n = self.heap.seq(&args).map_or(0, <[Value]>::len);
        self.copy_cells(n)?;
        let args = self
            .heap
            .seq(&args)
            .map(<[Value]>::to_vec)
            .unwrap_or_default();
        self.node(Node::Object(Object {
            class: g,
            args,
            state: None,
            list_items: Vec::new(),
            dict_items: Dict::default(),
        }))
    }

    fn inert(&mut self, g: Rc<Global>, args: Vec<Value>) -> R<Value> {
        self.node(Node::Object(Object {
            class: g,
            args,
            state: None,
            list_items: Vec::new(),
            dict_items: Dict::default(),
        }))
    }

    /// Interprets a call of `func` with the tuple `args`.
    fn call(&mut self, func: &Value, args: &Value, opcode: &'static str, depth: u32) -> R<Value> {
        let g = self.global_of(func, opcode)?;
        let n = self.heap.seq(args).map_or(0, <[Value]>::len);
        self.copy_cells(n)?;
        let args: Vec<Value> = self
            .heap
            .seq(args)
            .ok_or_else(|| self.err(format!("{opcode} of {g} with non-tuple arguments")))?
            .to_vec();
        let kind = policy::classify_call(&g.module, &g.name);
        let user_allowed = || {
            self.options
                .allow_globals
                .iter()
                .any(|a| *a == g.to_string())
        };
        match kind {
            Callable::Refused if user_allowed() && policy::class_allowed(&g.module, &g.name) => {
                self.inert(g, args)
            }
            Callable::Refused => Err(self.refuse(&g, opcode)),
            Callable::RebuildTensor | Callable::RebuildTensorV2 | Callable::RebuildTensorV3 => {
                self.rebuild_tensor(kind, &g, &args)
            }
            Callable::RebuildParameter => match args.first() {
                Some(v @ Value::Ref(_))
                    if matches!(
                        self.heap.node(v),
                        Some(Node::Tensor(_) | Node::Unsupported(_))
                    ) =>
                {
                    Ok(v.clone())
                }
                _ => Err(self.err(format!("{g}: first argument is not a tensor"))),
            },
            Callable::RebuildFromType => {
                if depth > 4 {
                    return Err(self.err(format!("{g}: nested too deeply")));
                }
                let (f, inner) = match (args.first(), args.get(2)) {
                    (Some(f), Some(a)) => (f.clone(), a.clone()),
                    _ => return Err(self.err(format!("{g}: expected (func, type, args, state)"))),
                };
                self.call(&f, &inner, opcode, depth + 1)
            }
            Callable::UnsupportedTensor(kind) => self.node(Node::Unsupported(Unsupported {
                kind: format!("{kind} ({g})"),
            })),
            Callable::Dict => {
                if g.name == "defaultdict" {
                    // The factory is called for every missing key: judged as a call.
                    match args.first() {
                        None | Some(Value::None) => {}
                        Some(Value::Global(f))
                            if policy::classify_call(&f.module, &f.name) != Callable::Refused => {}
                        Some(Value::Global(f)) => return Err(self.refuse(f, "defaultdict factory")),
                        Some(other) => {
                            return Err(self.err(format!(
                                "{g}: the factory is {}, not a global",
                                self.heap.describe(other)
                            )))
                        }
                    }
                }
                let mut d = Dict::default();
                if let Some(src) = args.iter().find(|a| self.heap.seq(a).is_some()) {
                    let n = self.heap.seq(src).map_or(0, <[Value]>::len);
                    self.copy_cells(n.saturating_mul(2))?;
                    let pairs = self.heap.seq(src).unwrap_or_default().to_vec();
                    for p in pairs {
                        match self.heap.seq(&p) {
                            Some([k, v]) => d.insert(k.clone(), v.clone()),
                            _ => return Err(self.err(format!("{g}: items must be pairs"))),
                        }
                    }
                } else if let Some(Node::Dict(src)) = args.first().and_then(|a| self.heap.node(a)) {
                    let n = src.items.len().saturating_mul(2);
                    self.copy_cells(n)?;
                    if let Some(Node::Dict(src)) = args.first().and_then(|a| self.heap.node(a)) {
                        d = src.clone();
                    }
                }
                self.node(Node::Dict(d))
            }
            Callable::List | Callable::Tuple | Callable::Set | Callable::FrozenSet => {
                let n = args
                    .first()
                    .and_then(|a| self.heap.seq(a))
                    .map_or(0, <[Value]>::len);
                self.copy_cells(n)?;
                let items = match args.first() {
                    None => Vec::new(),
                    Some(a) => self
                        .heap
                        .seq(a)
                        .ok_or_else(|| self.err(format!("{g}: argument is not a sequence")))?
                        .to_vec(),
                };
                let n = match kind {
                    Callable::List => Node::List(items),
                    Callable::Tuple => Node::Tuple(items),
                    _ => Node::Set(items),
                };
                self.node(n)
            }
            Callable::ByteArray => match args.first() {
                None => Ok(Value::Bytes(Rc::from(&[][..]))),
                Some(Value::Bytes(b)) => Ok(Value::Bytes(b.clone())),
                Some(_) => self.inert(g, args),
            },
            Callable::CodecsEncode => match (args.first(), args.get(1)) {
                (Some(Value::Str(s)), Some(Value::Str(enc))) => {
                    let enc = enc.to_ascii_lowercase().replace('_', "-");
                    let bytes = match enc.as_str() {
                        "latin1" | "latin-1" | "iso-8859-1" => s
                            .chars()
                            .map(|c| u8::try_from(u32::from(c)).ok())
                            .collect::<Option<Vec<u8>>>()
                            .ok_or_else(|| self.err("_codecs.encode: not latin-1 text"))?,
                        "utf-8" | "utf8" | "ascii" => s.as_bytes().to_vec(),
                        other => {
                            return Err(self.err(format!(
                                "_codecs.encode: unsupported encoding ({} bytes)",
                                other.len()
                            )))
                        }
                    };
                    Ok(Value::Bytes(Rc::from(bytes)))
                }
                _ => Err(self.err("_codecs.encode: expected (str, encoding)")),
            },
            Callable::Device => Ok(match args.first() {
                Some(Value::Str(s)) => Value::Str(s.clone()),
                _ => Value::Str(Rc::from("cpu")),
            }),
            Callable::Identity => Ok(args.first().cloned().unwrap_or(Value::None)),
            Callable::Reconstructor => {
                let cls = match args.first() {
                    Some(Value::Global(c)) => c.clone(),
                    _ => return Err(self.err(format!("{g}: first argument is not a class"))),
                };
                if !policy::class_allowed(&cls.module, &cls.name) {
                    return Err(self.refuse(&cls, opcode));
                }
                // `_reconstructor` runs `base.__init__(obj, state)` unless `base` is `object`:
                // only the builtin bases Python itself writes there are accepted.
                match args.get(1) {
                    Some(Value::Global(base))
                        if policy::reconstructor_base(&base.module, &base.name) => {}
                    Some(Value::Global(base)) => return Err(self.refuse(base, opcode)),
                    _ => return Err(self.err(format!("{g}: second argument is not a class"))),
                }
                self.inert(cls, args[1..].to_vec())
            }
            Callable::Inert => self.inert(g, args),
        }
    }

    fn int_arg(&self, g: &Global, v: Option<&Value>, what: &str) -> R<usize> {
        match v {
            Some(Value::Int(i)) if *i >= 0 => Ok(*i as usize),
            Some(Value::Int(i)) => Err(self.err(format!("{g}: negative {what} {i}"))),
            Some(other) => Err(self.err(format!(
                "{g}: {what} is {}, not an int",
                self.heap.describe(other)
            ))),
            None => Err(self.err(format!("{g}: missing {what}"))),
        }
    }

    fn ints_arg(&self, g: &Global, v: Option<&Value>, what: &str) -> R<Vec<usize>> {
        let items = v
            .and_then(|v| self.heap.seq(v))
            .ok_or_else(|| self.err(format!("{g}: {what} is not a tuple")))?;
        items
            .iter()
            .map(|x| self.int_arg(g, Some(x), what))
            .collect()
    }

    fn rebuild_tensor(&mut self, kind: Callable, g: &Global, args: &[Value]) -> R<Value> {
        let storage = match args.first().and_then(|a| self.heap.node(a)) {
            Some(Node::Storage(s)) => s.clone(),
            _ => return Err(self.err(format!("{g}: first argument is not a storage"))),
        };
        let offset = self.int_arg(g, args.get(1), "storage offset")?;
        let shape = self.ints_arg(g, args.get(2), "size")?;
        let strides = self.ints_arg(g, args.get(3), "stride")?;
        let (dtype, metadata) = match kind {
            Callable::RebuildTensorV3 => {
                let dtype = match args.get(6) {
                    Some(Value::Global(d)) if d.module == "torch" => {
                        DType::from_torch_name(&d.name)
                    }
                    _ => None,
                }
                .ok_or_else(|| self.err(format!("{g}: unknown dtype argument")))?;
                (dtype, args.get(7))
            }
            Callable::RebuildTensorV2 => (storage.dtype, args.get(6)),
            _ => (storage.dtype, None),
        };
        let (mut neg, mut conj) = (false, false);
        if let Some(Node::Dict(md)) = metadata.and_then(|m| self.heap.node(m)) {
            for (k, v) in &md.items {
                let on = matches!(v, Value::Bool(true));
                match k {
                    Value::Str(s) if &**s == "neg" => neg = on,
                    Value::Str(s) if &**s == "conj" => conj = on,
                    _ => return Err(self.err(format!("{g}: unknown tensor metadata"))),
                }
            }
        }
        if let Some(kind) = dtype.unsupported_reason() {
            return self.node(Node::Unsupported(Unsupported { kind }));
        }
        let spec = TensorSpec {
            dtype,
            shape,
            strides,
            offset,
            storage,
            neg,
            conj,
        };
        self.node(Node::Tensor(spec))
    }
}

/// Python 3 unpickles protocol-0/1 `str` objects written by Python 2 as text when they decode.
fn bytes_to_str_value(b: Vec<u8>) -> Value {
    match String::from_utf8(b) {
        Ok(s) => Value::Str(Rc::from(s)),
        Err(e) => Value::Bytes(Rc::from(e.into_bytes())),
    }
}

/// Decodes a protocol-0 STRING literal: a quoted Python `repr` with backslash escapes.
fn unquote_string(l: &[u8]) -> Option<Vec<u8>> {
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    if l.len() < 2 || l[0] != l[l.len() - 1] || !(l[0] == b'\'' || l[0] == b'"') {
        return None;
    }
    let body = &l[1..l.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *body.get(i)?;
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match body.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(u8::try_from(v & 0xff).ok()?);
            }
            b'x' => {
                let h = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// Decodes Python's `raw-unicode-escape`: `\uXXXX` / `\UXXXXXXXX` escapes, other bytes latin-1.
fn raw_unicode_escape(l: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(l.len());
    let mut i = 0;
    while i < l.len() {
        if l[i] == b'\\' && matches!(l.get(i + 1), Some(b'u' | b'U')) {
            let n = if l[i + 1] == b'u' { 4 } else { 8 };
            let h = std::str::from_utf8(l.get(i + 2..i + 2 + n)?).ok()?;
            let cp = u32::from_str_radix(h, 16).ok()?;
            out.push(char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER));
            i += 2 + n;
        } else {
            out.push(char::from(l[i]));
            i += 1;
        }
    }
    Some(out)
}

/// Converts a little-endian two's-complement integer to decimal; very long ones get a size note.
fn le_twos_complement_to_decimal(b: &[u8]) -> String {
    if b.len() > 64 {
        return format!("<{}-byte integer>", b.len());
    }
    let neg = b.last().is_some_and(|&x| x & 0x80 != 0);
    // Magnitude as little-endian u32 limbs.
    let mut bytes = b.to_vec();
    if neg {
        // Two's complement negate: invert and add one.
        let mut carry = 1u16;
        for x in bytes.iter_mut() {
            let v = u16::from(!*x) + carry;
            *x = (v & 0xff) as u8;
            carry = v >> 8;
        }
    }
    let mut limbs: Vec<u32> = bytes
        .chunks(4)
        .map(|c| {
            let mut a = [0u8; 4];
            a[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(a)
        })
        .collect();
    let mut digits = Vec::new();
    while limbs.iter().any(|&l| l != 0) {
        let mut rem = 0u64;
        for l in limbs.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*l);
            *l = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        digits.push(rem as u32);
    }
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    match digits.split_last() {
        None => s.push('0'),
        Some((first, rest)) => {
            s.push_str(&first.to_string());
            for d in rest.iter().rev() {
                s.push_str(&format!("{d:09}"));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<(Value, Heap)> {
        let mut heap = Heap::new(1000);
        let (v, _) = unpickle(
            bytes,
            0,
            "test.pkl",
            &mut heap,
            &mut NoPersistentIds,
            &Options::default(),
        )?;
        Ok((v, heap))
    }

    #[test]
    fn decimal_conversion() {
        assert_eq!(
            le_twos_complement_to_decimal(&[0, 0, 0, 0, 0, 0, 0, 0, 64]),
            "1180591620717411303424"
        );
        assert_eq!(
            le_twos_complement_to_decimal(&[0, 0, 0, 0, 0, 0, 0, 0, 192]),
            "-1180591620717411303424"
        );
    }

    #[test]
    fn protocol_0_literals() {
        assert_eq!(unquote_string(b"'a\\'b\\x41\\n'"), Some(b"a'bA\n".to_vec()));
        assert_eq!(raw_unicode_escape(b"caf\\u00e9").as_deref(), Some("café"));
    }

    #[test]
    fn code_runners_are_refused_when_named_and_unknown_calls_when_called() {
        let p = b"cos\nsystem\n(S'echo hi'\ntR.";
        match run(p) {
            Err(Error::Refused {
                global,
                opcode,
                offset,
                ..
            }) => {
                assert_eq!(global, "os.system");
                assert_eq!(opcode, "GLOBAL");
                assert_eq!(offset, 0);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let p = b"c__main__\nmake\n(S'x'\ntR.";
        match run(p) {
            Err(Error::Refused { global, opcode, .. }) => {
                assert_eq!(global, "__main__.make");
                assert_eq!(opcode, "REDUCE");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Naming a harmless global without calling it is fine.
        assert!(run(b"c__main__\nmake\n.").is_ok());
    }

    #[test]
    fn inst_is_a_call() {
        let p = b"(S'echo hi'\nios\nsystem\n.";
        assert!(matches!(run(p), Err(Error::Refused { opcode: "INST", .. })));
    }

    #[test]
    fn memo_shares_identity() {
        // protocol 2: a list memoized, then appended to after a second reference exists.
        // ]q\x00(h\x00e : list whose only element is itself (a cycle).
        let p = b"\x80\x02]q\x00h\x00a.";
        let (v, heap) = run(p).unwrap();
        let items = heap.seq(&v).unwrap();
        assert_eq!(items.len(), 1);
        assert!(matches!((&v, &items[0]), (Value::Ref(a), Value::Ref(b)) if a == b));
    }

    #[test]
    fn truncated_and_bad_streams_fail_cleanly() {
        assert!(run(b"\x80\x02X\xff\xff\xff\x7f").is_err());
        assert!(run(b"\x80\x02h\x05.").is_err());
        assert!(run(b"\x80\x02").is_err());
        assert!(run(b"\x80\x09N.").is_err());
        assert!(run(b"0").is_err());
        assert!(run(b"\x80\x02\x8e\xff\xff\xff\xff\xff\xff\xff\xff").is_err());
    }

    /// A protocol-4 STACK_GLOBAL of `module` `name`, then `tail`.
    fn stack_global(module: &str, name: &str, tail: &[u8]) -> Vec<u8> {
        let mut p = b"\x80\x04".to_vec();
        for s in [module, name] {
            p.push(0x8c);
            p.push(u8::try_from(s.len()).unwrap());
            p.extend_from_slice(s.as_bytes());
        }
        p.push(0x93);
        p.extend_from_slice(tail);
        p
    }

    fn refused_global(bytes: &[u8]) -> String {
        match run(bytes) {
            Err(Error::Refused { global, .. }) => global,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn regression_dotted_names_through_an_allowed_module_are_refused() {
        // `argparse._os` is the os module: Python resolves `_os.system` to os.system.
        let g = refused_global(&stack_global("argparse", "_os.system", b"."));
        assert!(g.starts_with("os.system"), "{g}");
        assert!(g.contains("argparse._os.system"), "{g}");
        let g = refused_global(&stack_global(
            "torch.utils.cpp_extension",
            "subprocess.Popen",
            b"(]\x8c\x05touch\x85R.",
        ));
        assert!(g.starts_with("subprocess.Popen"), "{g}");
        // The module object itself, reached as an attribute.
        let g = refused_global(&stack_global(
            "torch.utils.cpp_extension",
            "subprocess",
            b".",
        ));
        assert!(g.starts_with("subprocess"), "{g}");
    }

    #[test]
    fn regression_module_aliases_are_refused() {
        for (m, n, want) in [
            ("posixpath", "os.system", "os.system"),
            ("ntpath", "os.system", "os.system"),
            ("nt", "system", "os.system"),
            ("posix", "system", "os.system"),
            ("__builtin__", "reduce", "functools.reduce"),
            ("builtins", "eval.__call__", "__call__"),
            ("_posixsubprocess", "fork_exec", "subprocess.fork_exec"),
            ("cPickle", "loads", "pickle.loads"),
        ] {
            let g = refused_global(&stack_global(m, n, b"."));
            assert!(g.contains(want), "{m} {n}: {g}");
        }
    }

    #[test]
    fn regression_dunder_walks_are_refused() {
        let g = refused_global(&stack_global(
            "collections",
            "OrderedDict.__init__.__globals__",
            b".",
        ));
        assert!(g.contains("__globals__"), "{g}");
    }

    #[test]
    fn regression_reconstructor_base_and_defaultdict_factory_are_judged_as_calls() {
        // copyreg._reconstructor(__main__.Net, collections.Counter, None): Counter.__init__
        // would run.
        let mut p = stack_global("copyreg", "_reconstructor", b"");
        p.extend(stack_global("__main__", "Net", b"")[2..].iter());
        p.extend(stack_global("collections", "Counter", b"")[2..].iter());
        p.extend_from_slice(b"N\x87R.");
        assert_eq!(refused_global(&p), "collections.Counter");
        // With `object` as the base it is an inert instance.
        let mut p = stack_global("copyreg", "_reconstructor", b"");
        p.extend(stack_global("__main__", "Net", b"")[2..].iter());
        p.extend(stack_global("builtins", "object", b"")[2..].iter());
        p.extend_from_slice(b"N\x87R.");
        assert!(run(&p).is_ok());
        // defaultdict(__main__.make): the factory runs for a missing key.
        let mut p = stack_global("collections", "defaultdict", b"");
        p.extend(stack_global("__main__", "make", b"")[2..].iter());
        p.extend_from_slice(b"\x85R.");
        assert_eq!(refused_global(&p), "__main__.make");
        let mut p = stack_global("collections", "defaultdict", b"");
        p.extend(stack_global("builtins", "list", b"")[2..].iter());
        p.extend_from_slice(b"\x85R.");
        assert!(run(&p).is_ok());
    }

    #[test]
    fn regression_build_on_a_class_is_refused() {
        let p = stack_global("__main__", "Net", b"}b.");
        match run(&p) {
            Err(Error::Refused { global, opcode, .. }) => {
                assert_eq!(global, "__main__.Net");
                assert_eq!(opcode, "BUILD");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn harmless_dotted_classes_stay_inert() {
        // A nested class (protocol 4 qualname) instantiated with NEWOBJ.
        let p = stack_global("__main__", "Outer.Inner", b")\x81.");
        let (v, heap) = run(&p).unwrap();
        assert!(
            matches!(heap.node(&v), Some(Node::Object(o)) if o.class.to_string() == "__main__.Outer.Inner")
        );
    }

    #[test]
    fn regression_list_copies_are_budgeted() {
        // L = [None]*50 memoized, then list(L) 1000 times into one list.
        let mut p = b"\x80\x04]\x94(".to_vec();
        p.extend(std::iter::repeat_n(b'N', 50));
        p.extend_from_slice(b"e]\x94");
        p.extend(stack_global("builtins", "list", b"\x94")[2..].iter());
        p.push(b'0');
        for _ in 0..1000 {
            // GET list, GET L, TUPLE1, REDUCE, APPEND to the outer list.
            p.extend_from_slice(b"h\x02h\x00\x85Ra");
        }
        p.push(b'.');
        let mut heap = Heap::new(1 << 20);
        let mut opts = Options::default();
        opts.limits.max_copied_cells = 10_000;
        let err = unpickle(&p, 0, "bomb.pkl", &mut heap, &mut NoPersistentIds, &opts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("budget"), "{err}");
        opts.limits.max_copied_cells = 1 << 20;
        let mut heap = Heap::new(1 << 20);
        assert!(unpickle(&p, 0, "ok.pkl", &mut heap, &mut NoPersistentIds, &opts).is_ok());
    }

    #[test]
    fn node_cap_is_enforced() {
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b']', 2000));
        let err = run(&p).unwrap_err().to_string();
        assert!(err.contains("object count limit"), "{err}");
    }
}
