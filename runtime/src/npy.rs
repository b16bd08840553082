//! NumPy `.npy` files: [`read_npy`] reads a little-endian f32 (`<f4`) C-order array, the form
//! `np.save` writes for a float32 tensor (image inputs); [`read_npy_typed`] and
//! [`write_npy_typed`] carry any of the dtypes a graph program takes or returns (`<f2`,
//! `<f4`, `<f8`, `|i1`, `<i2`, `<i4`, `<i8`, `|u1`, `|b1`). Anything else (another dtype,
//! big-endian, Fortran order, a pickled object array) is a clear error naming the file.

use std::path::Path;

use crate::error::{shown, Error, Result};

/// An f32 array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions, C order.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|cause| Error::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    parse_npy(&bytes).map_err(|reason| Error::Input {
        path: path.to_path_buf(),
        reason,
    })
}

/// A `.npy` array of any supported dtype, as raw little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyTyped {
    /// Dimensions, C order.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: torchless_convert::DType,
    /// Values, row-major, little-endian.
    pub data: Vec<u8>,
}

/// The numpy `descr` of each supported dtype.
const DESCRS: &[(&str, torchless_convert::DType)] = &[
    ("<f2", torchless_convert::DType::F16),
    ("<f4", torchless_convert::DType::F32),
    ("<f8", torchless_convert::DType::F64),
    ("|i1", torchless_convert::DType::I8),
    ("<i2", torchless_convert::DType::I16),
    ("<i4", torchless_convert::DType::I32),
    ("<i8", torchless_convert::DType::I64),
    ("|u1", torchless_convert::DType::U8),
    ("|b1", torchless_convert::DType::Bool),
];

/// Reads a `.npy` file of any supported dtype.
pub fn read_npy_typed(path: &Path) -> Result<NpyTyped> {
    let bytes = std::fs::read(path).map_err(|cause| Error::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    parse_npy_typed(&bytes).map_err(|reason| Error::Input {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses a `.npy` file of any supported dtype.
pub fn parse_npy_typed(b: &[u8]) -> std::result::Result<NpyTyped, String> {
    let (descr, shape, data) = parse_parts(b)?;
    let dtype = DESCRS
        .iter()
        .find(|(d, _)| *d == descr || (d.starts_with('|') && descr.get(1..) == d.get(1..)))
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            format!(
                "dtype {} is not supported: expected one of {} (little-endian)",
                shown_descr(&descr),
                DESCRS
                    .iter()
                    .map(|(d, _)| *d)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("the .npy shape overflows")?;
    let want = n
        .checked_mul(dtype.size())
        .ok_or("the .npy shape overflows")?;
    if data.len() != want {
        return Err(format!(
            "shape {shape:?} needs {want} bytes of data, the file has {}",
            data.len()
        ));
    }
    Ok(NpyTyped {
        shape,
        dtype,
        data: data.to_vec(),
    })
}

/// Serialises an array as a version 1.0 `.npy` file; `None` for a dtype numpy cannot hold
/// (bfloat16: convert it to float32 first).
pub fn write_npy_typed(
    shape: &[usize],
    dtype: torchless_convert::DType,
    data: &[u8],
) -> Option<Vec<u8>> {
    let descr = DESCRS.iter().find(|(_, t)| *t == dtype)?.0;
    let mut out = npy_header(shape, descr);
    out.extend_from_slice(data);
    Some(out)
}

fn shown_descr(descr: &str) -> String {
    // A dtype string as numpy writes it is short and printable; anything else is escaped.
    if descr.len() <= 16 && descr.bytes().all(|b| b.is_ascii_graphic()) {
        format!("'{descr}'")
    } else {
        shown(descr)
    }
}

/// The header fields and data of a `.npy` file (format versions 1.0, 2.0 and 3.0).
fn parse_parts(b: &[u8]) -> std::result::Result<(String, Vec<usize>, &[u8]), String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if b.len() < 10 || &b[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10usize),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => return Err(format!(".npy format version {v} is not supported")),
    };
    let end = start
        .checked_add(hlen)
        .filter(|&e| e <= b.len())
        .ok_or("the .npy header is truncated")?;
    let header = std::str::from_utf8(&b[start..end]).map_err(|_| "the .npy header is not text")?;
    let descr = dict_value(header, "descr")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"').to_string();
    if dict_value(header, "fortran_order")? != "False" {
        return Err("Fortran-order arrays are not supported (save np.ascontiguousarray(x))".into());
    }
    let shape_text = dict_value(header, "shape")?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("bad shape {} in the .npy header", shown(shape_text)))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape {} in the .npy header", shown(shape_text)))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((descr, shape, &b[end..]))
}

/// Parses the bytes of a `.npy` file holding float32 values.
pub fn parse_npy(b: &[u8]) -> std::result::Result<NpyArray, String> {
    let (descr, shape, data) = parse_parts(b)?;
    if descr != "<f4" {
        return Err(format!(
            "dtype {} is not supported: expected little-endian float32 ('<f4'; np.save an array of dtype np.float32)",
            shown_descr(&descr)
        ));
    }
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("the .npy shape overflows")?;
    if Some(data.len()) != n.checked_mul(4) {
        return Err(format!(
            "shape {shape:?} needs {} bytes of data, the file has {}",
            n.saturating_mul(4),
            data.len()
        ));
    }
    let data = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(NpyArray { shape, data })
}

/// The raw text of `'key': value` in the header's Python dict literal.
fn dict_value<'a>(header: &'a str, key: &str) -> std::result::Result<&'a str, String> {
    let missing = || format!("the .npy header has no {key:?} entry");
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))
        .ok_or_else(missing)?;
    let rest = header[at + key.len() + 2..].trim_start();
    let rest = rest.strip_prefix(':').ok_or_else(missing)?.trim_start();
    let len = if rest.starts_with('(') {
        rest.find(')').map(|i| i + 1)
    } else {
        rest.find([',', '}'])
    }
    .ok_or_else(missing)?;
    Ok(rest[..len].trim())
}

/// Serialises an f32 array as a version 1.0 `.npy` file (what `np.save` writes).
pub fn write_npy_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let mut out = npy_header(shape, "<f4");
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The magic, version and header of a version 1.0 `.npy` file.
fn npy_header(shape: &[usize], descr: &str) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad so the data starts on a 64-byte boundary, ending with a newline.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_layouts() {
        let b = write_npy_bytes(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        let a = parse_npy(&b).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        let one = parse_npy(&write_npy_bytes(&[3], &[1.0, 2.0, 3.0])).unwrap();
        assert_eq!(one.shape, vec![3]);

        let swap = |from: &str, to: &str| {
            let mut c = b.clone();
            let at = c
                .windows(from.len())
                .position(|w| w == from.as_bytes())
                .unwrap();
            c[at..at + to.len()].copy_from_slice(to.as_bytes());
            parse_npy(&c).unwrap_err()
        };
        assert!(swap("<f4", "<f8").contains("'<f8'"));
        assert!(swap("<f4", ">f4").contains("little-endian"));
        assert!(swap("False", "True ").contains("Fortran"));
        assert!(parse_npy(&b[..b.len() - 1])
            .unwrap_err()
            .contains("24 bytes"));
        assert!(parse_npy(b"PK\x03\x04").unwrap_err().contains("magic"));
    }

    #[test]
    fn typed_round_trip() {
        use torchless_convert::DType;
        let data: Vec<u8> = [3i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let b = write_npy_typed(&[2], DType::I64, &data).unwrap();
        let t = parse_npy_typed(&b).unwrap();
        assert_eq!((t.shape, t.dtype, t.data), (vec![2], DType::I64, data));
        let b = write_npy_typed(&[1, 3], DType::Bool, &[1, 0, 1]).unwrap();
        assert_eq!(parse_npy_typed(&b).unwrap().dtype, DType::Bool);
        assert!(write_npy_typed(&[1], DType::BF16, &[0, 0]).is_none());
        let f8 = write_npy_typed(&[1], DType::F64, &[0; 8]).unwrap();
        assert!(parse_npy(&f8).unwrap_err().contains("'<f8'"));
        assert!(parse_npy_typed(&f8[..f8.len() - 1])
            .unwrap_err()
            .contains("8 bytes"));
    }
}
