//! torchvision's standard ImageNet preprocessing, reproduced exactly:
//! `Resize(256)` → `CenterCrop(224)` → `ToTensor()` → `Normalize(mean, std)` on a PIL image.
//!
//! - Decoding: PNG and JPEG (the `image` crate), converted to 8-bit RGB as PIL's
//!   `.convert("RGB")` does for 8-bit files.
//! - Resize: shorter side to 256, longer side `int(256 · long / short)` (torchvision's
//!   truncation), with Pillow's bilinear resampling (`Resample.c`): a triangle filter whose
//!   support is scaled by the downscale factor (antialiasing), coefficients normalised and
//!   turned into 22-bit fixed point, a horizontal pass then a vertical pass, each rounded and
//!   clamped to 8 bits. Same integer arithmetic, so the same bytes as Pillow.
//! - Center crop: offsets `round((size − crop) / 2)` with Python's round-half-to-even.
//! - `ToTensor` (`u8 as f32 / 255`) and `Normalize` (`(x − mean) / std`) in f32.

use std::path::Path;

use crate::error::{Error, Result};

/// ImageNet channel means (RGB).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height × width × 3` bytes.
    pub data: Vec<u8>,
}

/// Decodes a PNG or JPEG file (detected by content) to 8-bit RGB.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let err = |reason: String| Error::Input {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|cause| Error::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let format = image::guess_format(&bytes)
        .map_err(|_| err("not a PNG or JPEG image (unrecognised content)".into()))?;
    if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Jpeg) {
        return Err(err(format!(
            "{format:?} images are not supported (PNG or JPEG only)"
        )));
    }
    let img = image::load_from_memory_with_format(&bytes, format)
        .map_err(|e| err(format!("cannot decode: {e}")))?
        .to_rgb8();
    Ok(RgbImage {
        width: img.width() as usize,
        height: img.height() as usize,
        data: img.into_raw(),
    })
}

/// torchvision's `Resize(size) → CenterCrop(crop) → ToTensor → Normalize(mean, std)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// The shorter side after resizing (256).
    pub resize: usize,
    /// The square center crop (224).
    pub crop: usize,
    /// Per-channel mean.
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
}

impl Default for Preprocess {
    /// The ImageNet transform of torchvision's ResNet weights: 256, 224, ImageNet mean/std.
    fn default() -> Self {
        Preprocess {
            resize: 256,
            crop: 224,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

impl Preprocess {
    /// Decodes `path` and applies the transform: a `[3, crop, crop]` CHW f32 tensor.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>> {
        let img = load_image(path)?;
        self.apply(&img).map_err(|reason| Error::Input {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Applies the transform to a decoded image.
    pub fn apply(&self, img: &RgbImage) -> std::result::Result<Vec<f32>, String> {
        let resized = resize_shorter_side(img, self.resize)?;
        let cropped = center_crop(&resized, self.crop)?;
        Ok(to_normalized_chw(&cropped, self.mean, self.std))
    }
}

/// Hugging Face's `ViTImageProcessor` (its PIL backend, `ViTImageProcessorPil`), as a model
/// folder's `preprocessor_config.json` configures it: `do_resize` to `size`
/// `{height, width}` with `resample` (2: PIL bilinear, 3: PIL bicubic; no aspect-ratio
/// keeping, no center crop), `do_rescale` by `rescale_factor`, `do_normalize`
/// with `image_mean` / `image_std`. The resize is Pillow's, bit for bit.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessor {
    /// `(height, width)` after resizing; `None` (`do_resize: false`): the image's own size.
    pub resize: Option<(usize, usize)>,
    /// The resize filter.
    pub resample: Resample,
    /// Multiplies the 8-bit values (`1/255`); `None` (`do_rescale: false`): values as is.
    pub rescale: Option<f32>,
    /// Per-channel `(mean, std)`; `None` (`do_normalize: false`): no normalisation.
    pub normalize: Option<([f32; 3], [f32; 3])>,
}

#[derive(serde::Deserialize)]
struct RawImageProcessor {
    #[serde(default = "yes")]
    do_resize: bool,
    #[serde(default)]
    size: Option<serde_json::Value>,
    #[serde(default = "bilinear")]
    resample: u64,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "inv255")]
    rescale_factor: f64,
    #[serde(default = "yes")]
    do_normalize: bool,
    #[serde(default)]
    image_mean: Option<Vec<f32>>,
    #[serde(default)]
    image_std: Option<Vec<f32>>,
    #[serde(default)]
    do_center_crop: bool,
}

fn yes() -> bool {
    true
}
fn bilinear() -> u64 {
    2
}
fn inv255() -> f64 {
    1.0 / 255.0
}

impl ImageProcessor {
    /// Reads `preprocessor_config.json` of a model folder. Without one, ViT's defaults
    /// (`ViTImageProcessor()`: 224 × 224 bilinear, `1/255`, mean = std = 0.5).
    pub fn from_dir(dir: &Path) -> Result<ImageProcessor> {
        let path = dir.join("preprocessor_config.json");
        if !path.is_file() {
            return Ok(ImageProcessor {
                resize: Some((224, 224)),
                resample: Resample::Bilinear,
                rescale: Some(1.0 / 255.0),
                normalize: Some(([0.5; 3], [0.5; 3])),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|cause| Error::Io {
            path: path.clone(),
            cause,
        })?;
        let bad = |reason: String| Error::Config {
            file: path.clone(),
            reason,
        };
        let raw: RawImageProcessor = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not a ViTImageProcessor configuration: {e}")))?;
        if raw.do_center_crop {
            return Err(bad("do_center_crop = true is not supported".into()));
        }
        let resample = Resample::from_pil(raw.resample).map_err(bad)?;
        let resize = if raw.do_resize {
            let size = raw
                .size
                .unwrap_or(serde_json::json!({"height": 224, "width": 224}));
            let side = |k: &str| size.get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
            match (side("height"), side("width")) {
                (Some(h), Some(w)) if h > 0 && w > 0 => Some((h, w)),
                _ => {
                    return Err(bad(
                        "size must be {\"height\": H, \"width\": W} with H, W > 0 \
                         (shortest_edge resizing is not supported)"
                            .into(),
                    ))
                }
            }
        } else {
            None
        };
        let rescale = if raw.do_rescale {
            if !raw.rescale_factor.is_finite() {
                return Err(bad("rescale_factor is not finite".into()));
            }
            Some(raw.rescale_factor as f32)
        } else {
            None
        };
        let three = |v: Option<Vec<f32>>, field: &str| -> Result<[f32; 3]> {
            let v = v.unwrap_or_else(|| vec![0.5; 3]);
            <[f32; 3]>::try_from(v.as_slice())
                .map_err(|_| bad(format!("{field} must have 3 values (RGB)")))
        };
        let normalize = if raw.do_normalize {
            let mean = three(raw.image_mean, "image_mean")?;
            let std = three(raw.image_std, "image_std")?;
            if std.iter().any(|s| !s.is_finite() || *s == 0.0) {
                return Err(bad("image_std has a zero or non-finite value".into()));
            }
            Some((mean, std))
        } else {
            None
        };
        Ok(ImageProcessor {
            resize,
            resample,
            rescale,
            normalize,
        })
    }

    /// The `(height, width)` of its output for an image of that size.
    pub fn output_size(&self, img: &RgbImage) -> (usize, usize) {
        self.resize.unwrap_or((img.height, img.width))
    }

    /// Decodes `path` and applies the processor: a `[3, height, width]` CHW f32 tensor.
    pub fn load(&self, path: &Path) -> Result<(Vec<f32>, usize, usize)> {
        let img = load_image(path)?;
        let (h, w) = self.output_size(&img);
        Ok((self.apply(&img), h, w))
    }

    /// Applies the processor to a decoded image (CHW f32).
    pub fn apply(&self, img: &RgbImage) -> Vec<f32> {
        let resized;
        let img = match self.resize {
            Some((h, w)) if (h, w) != (img.height, img.width) => {
                resized = pil_resize(img, w, h, self.resample);
                &resized
            }
            _ => img,
        };
        let hw = img.width * img.height;
        let scale = self.rescale.unwrap_or(1.0);
        let (mean, std) = self.normalize.unwrap_or(([0.0; 3], [1.0; 3]));
        let mut out = vec![0f32; 3 * hw];
        for (i, px) in img.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * hw + i] = (px[c] as f32 * scale - mean[c]) / std[c];
            }
        }
        out
    }
}

/// torchvision `Resize(size)` on a PIL image: shorter side to `size`, longer side
/// `int(size · long / short)`, Pillow bilinear.
pub fn resize_shorter_side(img: &RgbImage, size: usize) -> std::result::Result<RgbImage, String> {
    let (w, h) = (img.width, img.height);
    if w == 0 || h == 0 || img.data.len() != w * h * 3 {
        return Err(format!("an empty or inconsistent {w}x{h} image"));
    }
    if size == 0 {
        return Err("resize to 0 pixels".into());
    }
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    // Python: int(size * long / short), a float division truncated.
    let new_long = (size as f64 * long as f64 / short as f64) as usize;
    let (nw, nh) = if w <= h {
        (size, new_long)
    } else {
        (new_long, size)
    };
    if (nw, nh) == (w, h) {
        return Ok(img.clone());
    }
    Ok(pil_bilinear_resize(img, nw, nh))
}

/// The Pillow resampling filters torchless reproduces bit for bit (`PIL.Image.Resampling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// `BILINEAR` (2): a triangle filter, support 1.
    Bilinear,
    /// `BICUBIC` (3): Keys' cubic convolution with `a = -0.5`, support 2.
    Bicubic,
}

impl Resample {
    /// The filter of a `preprocessor_config.json` `resample` code; the other codes are refused
    /// by name.
    pub fn from_pil(code: u64) -> std::result::Result<Resample, String> {
        match code {
            2 => Ok(Resample::Bilinear),
            3 => Ok(Resample::Bicubic),
            _ => {
                // PIL.Image.Resampling: NEAREST 0, LANCZOS 1, BILINEAR 2, BICUBIC 3, BOX 4, HAMMING 5.
                let name = [
                    "NEAREST", "LANCZOS", "BILINEAR", "BICUBIC", "BOX", "HAMMING",
                ]
                .get(code as usize)
                .copied()
                .unwrap_or("unknown");
                Err(format!(
                    "resample {code} (PIL {name}) is not supported (2, BILINEAR, or 3, BICUBIC)"
                ))
            }
        }
    }

    /// The filter's support at scale 1.
    fn support(self) -> f64 {
        match self {
            Resample::Bilinear => 1.0,
            Resample::Bicubic => 2.0,
        }
    }

    /// Pillow's `bilinear_filter` / `bicubic_filter` (Resample.c).
    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Resample::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Resample::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `precompute_coeffs` for `filter` and `normalize_coeffs_8bpc`: per output pixel, the
/// first input index, the tap count and fixed-point weights.
fn coeffs(
    in_size: usize,
    out_size: usize,
    filter: Resample,
) -> (Vec<(usize, usize)>, Vec<i32>, usize) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) truncates toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = filter.weight(((x + xmin) as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate().take(n) {
            let v = if ww != 0.0 { kx / ww } else { *kx };
            let fixed = v * (1u32 << PRECISION_BITS) as f64;
            kk[xx * ksize + x] = if v < 0.0 {
                (-0.5 + fixed) as i32
            } else {
                (0.5 + fixed) as i32
            };
        }
        bounds.push((xmin, n));
    }
    (bounds, kk, ksize)
}

fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// `PIL.Image.resize((nw, nh), Image.BILINEAR)` for an RGB image, bit for bit.
pub fn pil_bilinear_resize(img: &RgbImage, nw: usize, nh: usize) -> RgbImage {
    pil_resize(img, nw, nh, Resample::Bilinear)
}

/// `PIL.Image.resize((nw, nh), filter)` for an RGB image, bit for bit (Pillow 13's
/// `ImagingResampleInner`): a horizontal and a vertical pass, each rounded and clipped to 8 bits
/// and skipped when that side keeps its size; the vertical one runs first when the height
/// shrinks by more than twice as many pixels as the width does (Pillow ≤ 12 always ran the
/// horizontal pass first, so it differs by a rounding step on those sizes).
pub fn pil_resize(img: &RgbImage, nw: usize, nh: usize, filter: Resample) -> RgbImage {
    let (w, h) = (img.width as i64, img.height as i64);
    let vertical_first = h > nh as i64 && h - nh as i64 > (w - nw as i64) * 2;
    let pass_h = |im: &RgbImage| (nw != im.width).then(|| resample_rows(im, nw, filter));
    let pass_v = |im: &RgbImage| (nh != im.height).then(|| resample_columns(im, nh, filter));
    let mid = if vertical_first {
        pass_v(img)
    } else {
        pass_h(img)
    };
    let src = mid.as_ref().unwrap_or(img);
    let out = if vertical_first {
        pass_h(src)
    } else {
        pass_v(src)
    };
    out.or(mid).unwrap_or_else(|| img.clone())
}

/// Pillow's horizontal pass (`ImagingResampleHorizontal_8bpc`): every row to `nw` pixels.
fn resample_rows(img: &RgbImage, nw: usize, filter: Resample) -> RgbImage {
    let (w, h) = (img.width, img.height);
    let (bounds, kk, ksize) = coeffs(w, nw, filter);
    let mut out = vec![0u8; nw * h * 3];
    for y in 0..h {
        let row = &img.data[y * w * 3..(y + 1) * w * 3];
        for (xx, &(xmin, n)) in bounds.iter().enumerate() {
            let k = &kk[xx * ksize..xx * ksize + n];
            for c in 0..3 {
                let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                for (x, &kx) in k.iter().enumerate() {
                    ss += row[(x + xmin) * 3 + c] as i32 * kx;
                }
                out[(y * nw + xx) * 3 + c] = clip8(ss);
            }
        }
    }
    RgbImage {
        width: nw,
        height: h,
        data: out,
    }
}

/// Pillow's vertical pass (`ImagingResampleVertical_8bpc`): every column to `nh` pixels.
fn resample_columns(img: &RgbImage, nh: usize, filter: Resample) -> RgbImage {
    let (w, h) = (img.width, img.height);
    let (bounds, kk, ksize) = coeffs(h, nh, filter);
    let src = &img.data;
    let mut out = vec![0u8; w * nh * 3];
    for (yy, &(ymin, n)) in bounds.iter().enumerate() {
        let k = &kk[yy * ksize..yy * ksize + n];
        for i in 0..w * 3 {
            let mut ss: i32 = 1 << (PRECISION_BITS - 1);
            for (y, &ky) in k.iter().enumerate() {
                ss += src[(y + ymin) * w * 3 + i] as i32 * ky;
            }
            out[yy * w * 3 + i] = clip8(ss);
        }
    }
    RgbImage {
        width: w,
        height: nh,
        data: out,
    }
}

/// Python's `round()` of a half-integer `n / 2`: ties to even.
fn half_round_even(n: usize) -> usize {
    let q = n / 2;
    if n % 2 == 1 && q % 2 == 1 {
        q + 1
    } else {
        q
    }
}

/// torchvision `CenterCrop(size)`: top = `round((h − size) / 2)`, left likewise.
pub fn center_crop(img: &RgbImage, size: usize) -> std::result::Result<RgbImage, String> {
    if img.width < size || img.height < size {
        return Err(format!(
            "a {}x{} image is smaller than the {size}x{size} crop",
            img.width, img.height
        ));
    }
    let top = half_round_even(img.height - size);
    let left = half_round_even(img.width - size);
    let mut data = Vec::with_capacity(size * size * 3);
    for y in top..top + size {
        let start = (y * img.width + left) * 3;
        data.extend_from_slice(&img.data[start..start + size * 3]);
    }
    Ok(RgbImage {
        width: size,
        height: size,
        data,
    })
}

/// `ToTensor()` then `Normalize(mean, std)`: CHW f32.
pub fn to_normalized_chw(img: &RgbImage, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let hw = img.width * img.height;
    let mut out = vec![0f32; 3 * hw];
    for (i, px) in img.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * hw + i] = (px[c] as f32 / 255.0 - mean[c]) / std[c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_rounding_and_torchvision_sizes() {
        assert_eq!(half_round_even(0), 0);
        assert_eq!(half_round_even(1), 0); // round(0.5) == 0
        assert_eq!(half_round_even(3), 2); // round(1.5) == 2
        assert_eq!(half_round_even(5), 2); // round(2.5) == 2
        assert_eq!(half_round_even(36), 18);
        let img = RgbImage {
            width: 300,
            height: 260,
            data: vec![7; 300 * 260 * 3],
        };
        let r = resize_shorter_side(&img, 256).unwrap();
        // int(256 * 300 / 260) == 295
        assert_eq!((r.width, r.height), (295, 256));
        // a constant image stays constant through the normalised filter
        assert!(r.data.iter().all(|&v| v == 7));
        let c = center_crop(&r, 224).unwrap();
        assert_eq!((c.width, c.height), (224, 224));
    }
}
