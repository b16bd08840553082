//! CUDA plumbing shared by the ops: kernels from the embedded PTX modules, picked by dtype
//! (`<root>_f32`, `<root>_f16`, `<root>_bf16`), typed views of contiguous storages, outputs.

use candle_core::cuda_backend::cudarc::driver::{CudaFunction, CudaSlice, CudaView, DeviceRepr};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{bail, CudaDevice, CudaStorage, DType, Layout, Result};

/// An element type the CUDA paths take: f32, f16 or bf16 as candle stores it on the device.
pub(crate) trait CudaElem: crate::Elem + CudaDType + DeviceRepr {}
impl<T: crate::Elem + CudaDType + DeviceRepr> CudaElem for T {}

/// The kernel `<root>_<dtype>` of the embedded module `module` (loaded once per device).
pub(crate) fn function(
    dev: &CudaDevice,
    module: &'static str,
    ptx: &'static str,
    root: &str,
    dtype: DType,
) -> Result<CudaFunction> {
    let name = format!("{root}_{}", dtype.as_str());
    Ok(dev
        .get_or_load_custom_func(&name, &format!("torchless_{module}"), ptx)?
        .into_cuda_function())
}

/// The elements of a contiguous tensor.
pub(crate) fn view<'a, T: CudaDType + DeviceRepr>(
    s: &'a CudaStorage,
    l: &Layout,
    what: &str,
) -> Result<CudaView<'a, T>> {
    let slice = s.as_cuda_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(slice.slice(a..b)),
        None => bail!("{what} must be contiguous"),
    }
}

/// An uninitialised device buffer of `n` elements; the caller's kernel writes every element.
pub(crate) fn alloc<T: DeviceRepr>(dev: &CudaDevice, n: usize) -> Result<CudaSlice<T>> {
    // SAFETY: every caller launches a kernel that writes all `n` elements before the buffer
    // is read.
    unsafe { dev.alloc::<T>(n.max(1)) }
}

/// Wraps a device buffer as a storage.
pub(crate) fn storage<T: CudaDType>(s: CudaSlice<T>, dev: &CudaDevice) -> CudaStorage {
    CudaStorage::wrap_cuda_slice(s, dev.clone())
}

/// Launches with `cfg` after the arguments were pushed.
pub(crate) fn launch(
    builder: &mut candle_core::cuda_backend::cudarc::driver::LaunchArgs<'_>,
    cfg: candle_core::cuda_backend::cudarc::driver::LaunchConfig,
) -> Result<()> {
    // SAFETY: the callers push exactly the arguments their kernel declares, in order, with
    // device buffers at least as long as the grid reads and writes (checked before the call).
    unsafe { builder.launch(cfg) }.w()?;
    Ok(())
}

/// Dispatches a generic CUDA body on a float dtype.
macro_rules! dispatch_float_cuda {
    ($dtype:expr, $name:expr, |$t:ident| $body:expr) => {{
        match $dtype {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::F16 => {
                type $t = half::f16;
                $body
            }
            candle_core::DType::BF16 => {
                type $t = half::bf16;
                $body
            }
            other => candle_core::bail!("{}: unsupported dtype {:?}", $name, other),
        }
    }};
}
pub(crate) use dispatch_float_cuda;
