//! Fuzzes format detection and every reader: any bytes must open to a checkpoint whose every
//! tensor reads within bounds, or fail with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchless_convert::{open_bytes, EntryKind, OpenOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(ckpt) = open_bytes("fuzz.pt".as_ref(), data.to_vec(), &OpenOptions::default()) else {
        return;
    };
    let _ = torchless_convert::inspect(&ckpt);
    for e in &ckpt.entries {
        if let EntryKind::Tensor(spec) = &e.kind {
            let mut total = 0usize;
            let ok = ckpt.read_tensor(spec, spec.dtype, &mut |c| {
                total += c.len();
                Ok(())
            });
            if ok.is_ok() {
                assert_eq!(total, spec.nbytes());
            }
        }
    }
});
