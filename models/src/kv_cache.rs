//! The key/value cache of one decoding sequence: per layer, two tensors `[1, Hk, capacity, D]`
//! allocated once when the sequence starts. Each step writes its new keys and values in place
//! (`Tensor::slice_set`) at the current length; nothing is reallocated or concatenated, so
//! memory stays flat however many tokens are generated, and the decode attention kernel reads
//! the first `len` positions straight from the buffers.

use candle_core::{bail, DType, Device, Result, Tensor};

/// One layer's preallocated keys and values.
#[derive(Debug)]
struct LayerCache {
    k: Tensor,
    v: Tensor,
}

/// The cache of one sequence, for every layer of a decoder.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// Bytes a cache of these dimensions holds (`layers × 2 × kv_heads × capacity × head_dim ×`
    /// the dtype's size), or `None` when that overflows a `u64`. Check it against the device's
    /// free memory before [`KvCache::new`] when `capacity` comes from user input.
    pub fn nbytes_for(
        layers: usize,
        kv_heads: usize,
        head_dim: usize,
        capacity: usize,
        dtype: DType,
    ) -> Option<u64> {
        [
            layers,
            2,
            kv_heads,
            capacity,
            head_dim,
            dtype.size_in_bytes(),
        ]
        .iter()
        .try_fold(1u64, |a, &b| a.checked_mul(u64::try_from(b).ok()?))
    }

    /// Allocates `layers` pairs of zeroed `[1, kv_heads, capacity, head_dim]` buffers. Sizes
    /// whose byte count overflows are an error, not an allocation attempt.
    pub fn new(
        layers: usize,
        kv_heads: usize,
        head_dim: usize,
        capacity: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if capacity == 0 {
            bail!("kv cache: a capacity of 0 positions");
        }
        let fits = Self::nbytes_for(layers, kv_heads, head_dim, capacity, dtype)
            .is_some_and(|b| usize::try_from(b).is_ok());
        if !fits {
            bail!(
                "kv cache: {layers} layers × {kv_heads} heads × {capacity} positions × {head_dim} \
                 dims overflow the address space"
            );
        }
        let shape = (1, kv_heads, capacity, head_dim);
        let layers = (0..layers)
            .map(|_| {
                Ok(LayerCache {
                    k: Tensor::zeros(shape, dtype, device)?,
                    v: Tensor::zeros(shape, dtype, device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache {
            layers,
            len: 0,
            capacity,
        })
    }

    /// Positions already cached (the next token's position).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the buffers hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held by the buffers (constant for the cache's life).
    pub fn nbytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| (l.k.elem_count() + l.v.elem_count()) * l.k.dtype().size_in_bytes())
            .sum()
    }

    /// Checks that `t` more positions fit.
    pub fn check_room(&self, t: usize) -> Result<()> {
        if self.len.checked_add(t).is_none_or(|e| e > self.capacity) {
            bail!(
                "kv cache: {} cached + {t} new positions exceed its capacity of {}",
                self.len,
                self.capacity
            );
        }
        Ok(())
    }

    /// Writes layer `layer`'s keys and values for the `T` new positions (`[1, Hk, T, D]`,
    /// contiguous) at positions `len..len + T`. The length advances only in [`KvCache::advance`],
    /// once every layer has written.
    pub fn write(&self, layer: usize, k: &Tensor, v: &Tensor) -> Result<()> {
        let Some(l) = self.layers.get(layer) else {
            bail!("kv cache: layer {layer} of {}", self.layers.len());
        };
        self.check_room(k.dim(2)?)?;
        l.k.slice_set(&k.contiguous()?, 2, self.len)?;
        l.v.slice_set(&v.contiguous()?, 2, self.len)?;
        Ok(())
    }

    /// Layer `layer`'s whole buffers `[1, Hk, capacity, D]` (valid up to the current length plus
    /// what this step wrote).
    pub fn buffers(&self, layer: usize) -> Result<(&Tensor, &Tensor)> {
        match self.layers.get(layer) {
            Some(l) => Ok((&l.k, &l.v)),
            None => bail!("kv cache: layer {layer} of {}", self.layers.len()),
        }
    }

    /// Marks `t` more positions as cached.
    pub fn advance(&mut self, t: usize) -> Result<()> {
        self.check_room(t)?;
        self.len += t;
        Ok(())
    }

    /// Forgets every cached position (the buffers are kept for the next sequence).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_in_place_and_refuses_overflow() -> Result<()> {
        let dev = Device::Cpu;
        let mut c = KvCache::new(2, 2, 3, 4, DType::F32, &dev)?;
        let bytes = c.nbytes();
        let k = Tensor::arange(0f32, 12.0, &dev)?.reshape((1, 2, 2, 3))?;
        let v = (&k * 10.0)?;
        c.write(1, &k, &v)?;
        c.advance(2)?;
        let (kb, vb) = c.buffers(1)?;
        assert_eq!(
            kb.narrow(2, 0, 2)?.flatten_all()?.to_vec1::<f32>()?,
            k.flatten_all()?.to_vec1::<f32>()?
        );
        assert_eq!(
            vb.narrow(2, 0, 2)?.flatten_all()?.to_vec1::<f32>()?,
            v.flatten_all()?.to_vec1::<f32>()?
        );
        // The unwritten positions stay zero.
        assert_eq!(kb.narrow(2, 2, 2)?.sum_all()?.to_scalar::<f32>()?, 0.0);
        assert_eq!(c.len(), 2);
        assert!(c.write(0, &k, &v).is_ok());
        c.advance(2)?;
        assert!(c.write(0, &k, &v).is_err());
        assert!(c.advance(1).is_err());
        assert_eq!(c.nbytes(), bytes);
        c.clear();
        assert!(c.is_empty());
        Ok(())
    }

    #[test]
    fn sizes_are_estimated_and_overflow_is_refused_before_allocating() -> Result<()> {
        assert_eq!(KvCache::nbytes_for(2, 2, 3, 4, DType::F32), Some(384));
        assert_eq!(
            KvCache::nbytes_for(2, 2, 3, 4, DType::F32),
            Some(KvCache::new(2, 2, 3, 4, DType::F32, &Device::Cpu)?.nbytes() as u64)
        );
        assert_eq!(KvCache::nbytes_for(1, 1, 1, usize::MAX, DType::BF16), None);
        let e = KvCache::new(1, 1, 1, usize::MAX, DType::BF16, &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("overflow"), "{e}");
        Ok(())
    }
}
