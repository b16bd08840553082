//! A reader for NumPy `.npy` files holding a little-endian f32 (`<f4`) C-order array, the form
//! `np.save` writes for a float32 tensor; anything else (another dtype, big-endian, Fortran
//! order, a pickled object array) is a clear error naming the file.

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

/// Parses the bytes of a `.npy` file (format versions 1.0, 2.0 and 3.0).
pub fn parse_npy(b: &[u8]) -> std::result::Result<NpyArray, String> {
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
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    if descr != "<f4" {
        // A dtype string as numpy writes it is short and printable; anything else is escaped.
        let descr = if descr.len() <= 16 && descr.bytes().all(|b| b.is_ascii_graphic()) {
            format!("'{descr}'")
        } else {
            shown(descr)
        };
        return Err(format!(
            "dtype {descr} is not supported: expected little-endian float32 ('<f4'; np.save an array of dtype np.float32)"
        ));
    }
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
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("the .npy shape overflows")?;
    let data = &b[end..];
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
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad so the data starts on a 64-byte boundary, ending with a newline.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
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
}
