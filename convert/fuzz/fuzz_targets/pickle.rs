//! Fuzzes the pickle machine alone: any bytes, with a persistent loader that hands out
//! storages, must give a value or an error — never a panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchless_convert::pickle::{self, Heap, Limits, Node, Options, PersistentLoad, Value};
use torchless_convert::tensor::StorageRef;
use torchless_convert::DType;

struct AnyStorage;

impl PersistentLoad for AnyStorage {
    fn load(&mut self, _pid: &Value, heap: &mut Heap) -> Result<Value, String> {
        heap.push(Node::Storage(StorageRef {
            id: 0,
            dtype: DType::F32,
            byte_offset: 0,
            byte_len: 64,
        }))
        .ok_or_else(|| "full".to_string())
    }
}

fuzz_target!(|data: &[u8]| {
    let options = Options {
        limits: Limits {
            max_stack: 1 << 16,
            max_memo: 1 << 16,
            max_marks: 1 << 10,
            max_nodes: 1 << 16,
            max_copied_cells: 1 << 16,
        },
        allow_globals: Vec::new(),
    };
    let mut heap = Heap::new(options.limits.max_nodes);
    if let Ok((v, _)) = pickle::unpickle(data, 0, "fuzz", &mut heap, &mut AnyStorage, &options) {
        let _ = heap.describe(&v);
        for i in 0..heap.len() as u32 {
            if let Node::Tensor(t) = heap.get(i) {
                let _ = t.validate();
            }
        }
    }
});
