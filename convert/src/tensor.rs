//! Tensor views over storages: shape, strides and offset as the checkpoint declares them, the
//! bound checks that make a hostile view harmless, and the gather that turns any view into
//! contiguous row-major bytes a chunk at a time.

use std::ops::Range;

use crate::dtype::DType;

/// Largest materialised size, in bytes, of a view whose elements overlap (stride-0 expands and
/// other self-overlapping strides): beyond this a tiny hostile file could make the converter
/// write terabytes from a few bytes of storage.
pub const MAX_EXPANDED_BYTES: usize = 1 << 30;

/// A reference to (part of) a storage, as a persistent id resolves it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StorageRef {
    /// Index into the checkpoint's storage table.
    pub id: usize,
    /// Element type the storage was saved with (`U8` for untyped storages).
    pub dtype: DType,
    /// Start of this (view of the) storage within the storage's bytes.
    pub byte_offset: usize,
    /// Length of this (view of the) storage in bytes.
    pub byte_len: usize,
}

/// A tensor as a view of a storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorSpec {
    /// Element type.
    pub dtype: DType,
    /// Sizes, outermost first.
    pub shape: Vec<usize>,
    /// Strides in elements.
    pub strides: Vec<usize>,
    /// Offset of element 0 in elements from the start of the storage view.
    pub offset: usize,
    /// The storage the elements live in.
    pub storage: StorageRef,
    /// PyTorch's lazy negation bit: the logical values are the negated stored values.
    pub neg: bool,
    /// PyTorch's lazy conjugation bit (complex tensors).
    pub conj: bool,
}

impl TensorSpec {
    /// Number of elements, or `None` on overflow.
    pub fn numel(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// Size of the contiguous result in bytes (valid after [`TensorSpec::validate`]).
    pub fn nbytes(&self) -> usize {
        self.numel().unwrap_or(0) * self.dtype.size()
    }

    /// Row-major strides for `shape`.
    pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
        let mut strides = vec![1usize; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1].saturating_mul(shape[i + 1]);
        }
        strides
    }

    /// Whether the elements are laid out row-major without gaps (dims of size 1 ignore strides).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1usize;
        for (&size, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if size == 0 {
                return true;
            }
            if size != 1 && stride != expected {
                return false;
            }
            expected = expected.saturating_mul(size);
        }
        true
    }

    /// Checks every size, stride and offset against the storage, with checked arithmetic.
    /// The error says what is out of bounds; the caller adds the tensor's name.
    pub fn validate(&self) -> Result<(), String> {
        if self.shape.len() != self.strides.len() {
            return Err(format!(
                "{} sizes but {} strides",
                self.shape.len(),
                self.strides.len()
            ));
        }
        let es = self.dtype.size();
        let numel = self
            .numel()
            .ok_or_else(|| format!("shape {:?} overflows", self.shape))?;
        let nbytes = numel
            .checked_mul(es)
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(|| format!("shape {:?} is too large", self.shape))?;
        if nbytes > self.storage.byte_len && nbytes > MAX_EXPANDED_BYTES {
            return Err(format!(
                "view (shape {:?}, strides {:?}) expands a {}-byte storage to {nbytes} bytes; \
                 refusing views that overlap themselves beyond {MAX_EXPANDED_BYTES} bytes",
                self.shape, self.strides, self.storage.byte_len
            ));
        }
        if (self.neg || self.conj) && !self.dtype.is_castable_float() && self.dtype != DType::C64 {
            return Err(format!(
                "a {} tensor with a lazy negation/conjugation bit is not supported",
                self.dtype
            ));
        }
        let last_byte = if numel == 0 {
            self.offset.checked_mul(es)
        } else {
            let mut max = self.offset;
            for (&size, &stride) in self.shape.iter().zip(&self.strides) {
                max = (size - 1)
                    .checked_mul(stride)
                    .and_then(|x| max.checked_add(x))
                    .ok_or_else(|| format!("strides {:?} overflow", self.strides))?;
            }
            max.checked_add(1).and_then(|n| n.checked_mul(es))
        }
        .ok_or_else(|| "offset overflows".to_string())?;
        if last_byte > self.storage.byte_len {
            return Err(format!(
                "view (offset {}, shape {:?}, strides {:?}) reaches byte {} of a {}-byte storage",
                self.offset, self.shape, self.strides, last_byte, self.storage.byte_len
            ));
        }
        Ok(())
    }

    /// For a contiguous tensor, its byte range within the storage view.
    pub fn contiguous_range(&self) -> Option<Range<usize>> {
        if !self.is_contiguous() {
            return None;
        }
        let start = self.storage.byte_offset + self.offset * self.dtype.size();
        Some(start..start + self.nbytes())
    }

    /// Whether this view may be written straight from storage bytes (contiguous, no lazy bits).
    pub fn is_plain(&self) -> bool {
        !(self.neg || (self.conj && self.dtype == DType::C64)) && self.is_contiguous()
    }
}

/// Copies a (validated) view's elements out of its storage in row-major order, a chunk at a time.
pub struct Gather<'a> {
    src: &'a [u8],
    es: usize,
    base: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
    index: Vec<usize>,
    done: usize,
    total: usize,
}

impl<'a> Gather<'a> {
    /// A gather over `storage` (the whole storage's bytes) for a validated spec.
    pub fn new(spec: &TensorSpec, storage: &'a [u8]) -> Self {
        let src = &storage[spec.storage.byte_offset..];
        // Merge dims that are contiguous with each other and drop size-1 dims.
        let mut shape: Vec<usize> = Vec::new();
        let mut strides: Vec<usize> = Vec::new();
        for (&size, &stride) in spec.shape.iter().zip(&spec.strides) {
            if size == 1 {
                continue;
            }
            if let (Some(ls), Some(lst)) = (shape.last_mut(), strides.last_mut()) {
                if *lst == stride * size {
                    *ls *= size;
                    *lst = stride;
                    continue;
                }
            }
            shape.push(size);
            strides.push(stride);
        }
        let total = spec.numel().unwrap_or(0);
        Gather {
            src,
            es: spec.dtype.size(),
            base: spec.offset,
            index: vec![0; shape.len()],
            shape,
            strides,
            done: 0,
            total,
        }
    }

    /// Elements still to copy.
    pub fn remaining(&self) -> usize {
        self.total - self.done
    }

    /// Replaces `out` with the next at most `max_elems` (≥ 1) elements; returns how many.
    pub fn next_chunk(&mut self, out: &mut Vec<u8>, max_elems: usize) -> usize {
        out.clear();
        let es = self.es;
        let want = self.remaining().min(max_elems.max(1));
        let mut copied = 0;
        if self.shape.is_empty() {
            if want > 0 {
                let at = self.base * es;
                out.extend_from_slice(&self.src[at..at + es]);
                self.done += 1;
                return 1;
            }
            return 0;
        }
        let last = self.shape.len() - 1;
        while copied < want {
            let mut elem = self.base;
            for (i, s) in self.index.iter().zip(&self.strides) {
                elem += i * s;
            }
            let run = (self.shape[last] - self.index[last]).min(want - copied);
            let stride = self.strides[last];
            if stride == 1 {
                let at = elem * es;
                out.extend_from_slice(&self.src[at..at + run * es]);
            } else {
                for k in 0..run {
                    let at = (elem + k * stride) * es;
                    out.extend_from_slice(&self.src[at..at + es]);
                }
            }
            copied += run;
            self.index[last] += run;
            let mut d = last;
            while self.index[d] == self.shape[d] && d > 0 {
                self.index[d] = 0;
                d -= 1;
                self.index[d] += 1;
            }
        }
        self.done += copied;
        copied
    }
}

/// Reverses the byte order of every `unit`-byte word in place.
pub fn byteswap(bytes: &mut [u8], unit: usize) {
    if unit > 1 {
        for word in bytes.chunks_exact_mut(unit) {
            word.reverse();
        }
    }
}

/// Applies PyTorch's lazy negation and conjugation bits to little-endian elements in place.
pub fn apply_lazy_bits(bytes: &mut [u8], dtype: DType, neg: bool, conj: bool) {
    // Flip the sign bit (the top bit of the last byte, little-endian) of every `unit`-byte word
    // selected by `pick(word index)`.
    fn flip(bytes: &mut [u8], unit: usize, pick: impl Fn(usize) -> bool) {
        for (i, word) in bytes.chunks_exact_mut(unit).enumerate() {
            if pick(i) {
                word[unit - 1] ^= 0x80;
            }
        }
    }
    match dtype {
        DType::C64 => {
            // Components alternate real, imaginary.
            match (neg, conj) {
                (true, true) => flip(bytes, 4, |i| i % 2 == 0),
                (true, false) => flip(bytes, 4, |_| true),
                (false, true) => flip(bytes, 4, |i| i % 2 == 1),
                (false, false) => {}
            }
        }
        d if d.is_castable_float() && neg => flip(bytes, d.size(), |_| true),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(shape: &[usize], strides: &[usize], offset: usize, storage_len: usize) -> TensorSpec {
        TensorSpec {
            dtype: DType::I32,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            offset,
            storage: StorageRef {
                id: 0,
                dtype: DType::I32,
                byte_offset: 0,
                byte_len: storage_len * 4,
            },
            neg: false,
            conj: false,
        }
    }

    fn storage(n: i32) -> Vec<u8> {
        (0..n).flat_map(|i| i.to_le_bytes()).collect()
    }

    fn gather_all(s: &TensorSpec, st: &[u8], chunk: usize) -> Vec<i32> {
        let mut g = Gather::new(s, st);
        let mut out = Vec::new();
        let mut all = Vec::new();
        while g.next_chunk(&mut out, chunk) > 0 {
            all.extend_from_slice(&out);
        }
        all.chunks(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn transpose_gathers_logical_order() {
        // 2x3 row-major storage viewed transposed as 3x2.
        let s = spec(&[3, 2], &[1, 3], 0, 6);
        s.validate().unwrap();
        assert!(!s.is_contiguous());
        for chunk in [1, 2, 5, 100] {
            assert_eq!(gather_all(&s, &storage(6), chunk), vec![0, 3, 1, 4, 2, 5]);
        }
    }

    #[test]
    fn expand_and_offset() {
        let s = spec(&[3, 2], &[0, 1], 4, 6);
        s.validate().unwrap();
        assert_eq!(gather_all(&s, &storage(6), 3), vec![4, 5, 4, 5, 4, 5]);
        let scalar = spec(&[], &[], 5, 6);
        scalar.validate().unwrap();
        assert_eq!(gather_all(&scalar, &storage(6), 3), vec![5]);
    }

    #[test]
    fn bounds_are_checked() {
        assert!(spec(&[2, 3], &[3, 1], 1, 6).validate().is_err());
        assert!(spec(&[2, 3], &[3, 1], 0, 6).validate().is_ok());
        assert!(spec(&[0, 3], &[3, 1], 6, 6).validate().is_ok());
        assert!(spec(&[0, 3], &[3, 1], 7, 6).validate().is_err());
        assert!(spec(&[1 << 62, 1 << 62], &[1, 1], 0, 6).validate().is_err());
        assert!(spec(&[4], &[usize::MAX], 0, 6).validate().is_err());
        assert!(spec(&[2], &[1, 1], 0, 6).validate().is_err());
        // A stride-0 expand of a tiny storage to terabytes (found by fuzzing).
        assert!(spec(&[1 << 40], &[0], 0, 6).validate().is_err());
        assert!(spec(&[1000], &[0], 0, 6).validate().is_ok());
    }

    #[test]
    fn contiguity_ignores_unit_dims() {
        assert!(spec(&[2, 1, 3], &[3, 99, 1], 0, 6).is_contiguous());
        assert!(!spec(&[2, 3], &[1, 2], 0, 6).is_contiguous());
        assert_eq!(TensorSpec::contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
    }

    #[test]
    fn lazy_bits() {
        let mut b: Vec<u8> = [1.0f32, 2.0, -3.0, 4.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        apply_lazy_bits(&mut b, DType::C64, false, true);
        let v: Vec<f32> = b
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(v, vec![1.0, -2.0, -3.0, -4.0]);
        let mut h = half::bf16::from_f32(1.5).to_le_bytes().to_vec();
        apply_lazy_bits(&mut h, DType::BF16, true, false);
        assert_eq!(half::bf16::from_le_bytes([h[0], h[1]]).to_f32(), -1.5);
    }
}
