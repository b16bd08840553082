//! Per-call cost of one short text through `SentenceEncoder::embed` called directly from Rust,
//! and through the C ABI (`torchless_embed`), on the same model; the Go benchmark
//! (`BenchmarkEmbed` in bindings/go/torchless) measures the same call from Go.
//! `cargo run --release -p torchless-capi --example embed_timing -- tests/fixtures/bert/tiny-st`

use std::ffi::{c_char, CString};
use std::time::Instant;

use torchless::capi::{
    torchless_embed, torchless_model_free, torchless_model_load, TorchlessStatus,
};
use torchless::{DeviceSpec, LoadOptions, SentenceEncoder};

const TEXT: &str = "Hello world";
const ROUNDS: usize = 7;
const CALLS: usize = 2000;

/// Median over rounds of the mean time per call, in microseconds.
fn time(mut call: impl FnMut()) -> f64 {
    for _ in 0..200 {
        call();
    }
    let mut means: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..CALLS {
                call();
            }
            t.elapsed().as_secs_f64() * 1e6 / CALLS as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    means[ROUNDS / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: embed_timing MODEL_DIR")?;
    let opts = LoadOptions {
        device: DeviceSpec::Cpu,
        ..Default::default()
    };
    let enc = SentenceEncoder::load(dir.as_ref(), &opts)?;
    let rust = time(|| {
        let v = enc.embed(&[TEXT], 32).expect("embed");
        std::hint::black_box(v);
    });

    let cdir = CString::new(dir)?;
    let mut model = std::ptr::null_mut();
    // SAFETY: valid strings and a writable out pointer.
    let s = unsafe {
        torchless_model_load(cdir.as_ptr(), c"cpu".as_ptr(), c"f32".as_ptr(), &mut model)
    };
    if s != TorchlessStatus::Ok {
        return Err(format!("load failed: {s:?}").into());
    }
    let text = CString::new(TEXT)?;
    let texts: [*const c_char; 1] = [text.as_ptr()];
    let mut out = vec![0f32; enc.dim()];
    let (mut rows, mut dim) = (0usize, 0usize);
    let c = time(|| {
        // SAFETY: a live model, one live string, a buffer of `dim` floats.
        let s = unsafe {
            torchless_embed(
                model,
                texts.as_ptr(),
                1,
                out.as_mut_ptr(),
                out.len(),
                &mut rows,
                &mut dim,
            )
        };
        assert_eq!(s, TorchlessStatus::Ok);
    });
    // The fixed cost of a call that the library refuses before running the model (an empty
    // batch), as Go's BenchmarkCallOverhead measures it from Go.
    let refused = time(|| {
        // SAFETY: as above, with no texts.
        let s = unsafe {
            torchless_embed(
                model,
                texts.as_ptr(),
                0,
                out.as_mut_ptr(),
                out.len(),
                &mut rows,
                &mut dim,
            )
        };
        assert_eq!(s, TorchlessStatus::InvalidArgument);
    });
    // SAFETY: the handle from torchless_model_load, freed once.
    unsafe { torchless_model_free(model) };
    println!("rust SentenceEncoder::embed   {rust:8.2} us/call");
    println!(
        "C ABI torchless_embed         {c:8.2} us/call  ({:.3}x Rust)",
        c / rust
    );
    println!("C ABI refused call (n = 0)    {refused:8.3} us/call");
    Ok(())
}
