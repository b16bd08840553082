//! Element types: every dtype PyTorch can store, how each is named in pickles, in `torch.export`
//! configs and in safetensors, and which ones safetensors can hold.

use safetensors::Dtype as StDtype;

/// A PyTorch element type as found in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// `torch.float64`
    F64,
    /// `torch.float32`
    F32,
    /// `torch.float16`
    F16,
    /// `torch.bfloat16`
    BF16,
    /// `torch.int64`
    I64,
    /// `torch.int32`
    I32,
    /// `torch.int16`
    I16,
    /// `torch.int8`
    I8,
    /// `torch.uint8`
    U8,
    /// `torch.uint16`
    U16,
    /// `torch.uint32`
    U32,
    /// `torch.uint64`
    U64,
    /// `torch.bool`
    Bool,
    /// `torch.float8_e4m3fn`
    F8E4M3,
    /// `torch.float8_e5m2`
    F8E5M2,
    /// `torch.float8_e4m3fnuz`
    F8E4M3Fnuz,
    /// `torch.float8_e5m2fnuz`
    F8E5M2Fnuz,
    /// `torch.float8_e8m0fnu`
    F8E8M0,
    /// `torch.complex64`
    C64,
    /// `torch.complex128` (safetensors has no equivalent)
    C128,
    /// `torch.complex32` (safetensors has no equivalent)
    C32,
    /// Quantized and bit-packed types (`qint8`, `quint4x2`, `bits8`, `float4_e2m1fn_x2`, ...),
    /// kept by name so the refusal can say which.
    Other(&'static str),
}

/// Every storable dtype with its torch name and its legacy storage class name, if any.
const TABLE: &[(DType, &str, Option<&str>)] = &[
    (DType::F64, "float64", Some("DoubleStorage")),
    (DType::F32, "float32", Some("FloatStorage")),
    (DType::F16, "float16", Some("HalfStorage")),
    (DType::BF16, "bfloat16", Some("BFloat16Storage")),
    (DType::I64, "int64", Some("LongStorage")),
    (DType::I32, "int32", Some("IntStorage")),
    (DType::I16, "int16", Some("ShortStorage")),
    (DType::I8, "int8", Some("CharStorage")),
    (DType::U8, "uint8", Some("ByteStorage")),
    (DType::Bool, "bool", Some("BoolStorage")),
    (DType::C128, "complex128", Some("ComplexDoubleStorage")),
    (DType::C64, "complex64", Some("ComplexFloatStorage")),
    (DType::U16, "uint16", None),
    (DType::U32, "uint32", None),
    (DType::U64, "uint64", None),
    (DType::F8E4M3, "float8_e4m3fn", None),
    (DType::F8E5M2, "float8_e5m2", None),
    (DType::F8E4M3Fnuz, "float8_e4m3fnuz", None),
    (DType::F8E5M2Fnuz, "float8_e5m2fnuz", None),
    (DType::F8E8M0, "float8_e8m0fnu", None),
    (DType::C32, "complex32", None),
];

/// Quantized and packed dtypes: (torch name, legacy storage class, element size in bytes).
const OTHER: &[(&str, Option<&str>, usize)] = &[
    ("qint8", Some("QInt8Storage"), 1),
    ("quint8", Some("QUInt8Storage"), 1),
    ("qint32", Some("QInt32Storage"), 4),
    ("quint4x2", Some("QUInt4x2Storage"), 1),
    ("quint2x4", Some("QUInt2x4Storage"), 1),
    ("float4_e2m1fn_x2", None, 1),
    ("bits8", None, 1),
    ("bits16", None, 2),
    ("bits1x8", None, 1),
    ("bits2x4", None, 1),
    ("bits4x2", None, 1),
    ("bcomplex32", None, 4),
];

/// Aliases PyTorch also accepts for dtype globals (`torch.float`, `torch.long`, ...).
const ALIASES: &[(&str, DType)] = &[
    ("double", DType::F64),
    ("float", DType::F32),
    ("half", DType::F16),
    ("long", DType::I64),
    ("int", DType::I32),
    ("short", DType::I16),
    ("cfloat", DType::C64),
    ("cdouble", DType::C128),
    ("chalf", DType::C32),
];

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 | DType::C64 => 8,
            DType::F32 | DType::I32 | DType::U32 | DType::C32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::I8
            | DType::U8
            | DType::Bool
            | DType::F8E4M3
            | DType::F8E5M2
            | DType::F8E4M3Fnuz
            | DType::F8E5M2Fnuz
            | DType::F8E8M0 => 1,
            DType::C128 => 16,
            DType::Other(name) => OTHER
                .iter()
                .find(|(n, _, _)| *n == name)
                .map_or(1, |(_, _, s)| *s),
        }
    }

    /// The unit a big-endian file swaps: the element size, or the component size for complex types.
    pub fn swap_unit(self) -> usize {
        match self {
            DType::C64 => 4,
            DType::C128 => 8,
            DType::C32 => 2,
            other => other.size(),
        }
    }

    /// The name PyTorch prints after `torch.` (`float32`, `qint8`, ...).
    pub fn torch_name(self) -> &'static str {
        match self {
            DType::Other(name) => name,
            d => TABLE
                .iter()
                .find(|(t, _, _)| *t == d)
                .map_or("unknown", |(_, n, _)| n),
        }
    }

    /// Parses a dtype global's name (`float32`, `float`, `bfloat16`, `qint8`, ...).
    pub fn from_torch_name(name: &str) -> Option<DType> {
        if let Some((d, _, _)) = TABLE.iter().find(|(_, n, _)| *n == name) {
            return Some(*d);
        }
        if let Some((_, d)) = ALIASES.iter().find(|(n, _)| *n == name) {
            return Some(*d);
        }
        OTHER
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(n, _, _)| DType::Other(n))
    }

    /// Parses a legacy storage class name (`FloatStorage`, `QInt8Storage`, ...).
    /// `UntypedStorage` and `ByteStorage` both give `U8`.
    pub fn from_storage_class(name: &str) -> Option<DType> {
        if name == "UntypedStorage" || name == "_UntypedStorage" {
            return Some(DType::U8);
        }
        if let Some((d, _, _)) = TABLE.iter().find(|(_, _, s)| *s == Some(name)) {
            return Some(*d);
        }
        OTHER
            .iter()
            .find(|(_, s, _)| *s == Some(name))
            .map(|(n, _, _)| DType::Other(n))
    }

    /// Parses the `ScalarType` integer of a `torch.export` schema (`torch/_export/serde/schema.py`).
    pub fn from_export_scalar_type(code: i64) -> Option<DType> {
        Some(match code {
            1 => DType::U8,
            2 => DType::I8,
            3 => DType::I16,
            4 => DType::I32,
            5 => DType::I64,
            6 => DType::F16,
            7 => DType::F32,
            8 => DType::F64,
            9 => DType::C32,
            10 => DType::C64,
            11 => DType::C128,
            12 => DType::Bool,
            13 => DType::BF16,
            28 => DType::U16,
            29 => DType::F8E4M3,
            30 => DType::F8E5M2,
            31 => DType::F8E4M3Fnuz,
            32 => DType::F8E5M2Fnuz,
            33 => DType::F8E8M0,
            34 => DType::U32,
            35 => DType::U64,
            _ => return None,
        })
    }

    /// The safetensors dtype, or `None` when safetensors cannot hold this type.
    pub fn to_safetensors(self) -> Option<StDtype> {
        Some(match self {
            DType::F64 => StDtype::F64,
            DType::F32 => StDtype::F32,
            DType::F16 => StDtype::F16,
            DType::BF16 => StDtype::BF16,
            DType::I64 => StDtype::I64,
            DType::I32 => StDtype::I32,
            DType::I16 => StDtype::I16,
            DType::I8 => StDtype::I8,
            DType::U8 => StDtype::U8,
            DType::U16 => StDtype::U16,
            DType::U32 => StDtype::U32,
            DType::U64 => StDtype::U64,
            DType::Bool => StDtype::BOOL,
            DType::F8E4M3 => StDtype::F8_E4M3,
            DType::F8E5M2 => StDtype::F8_E5M2,
            DType::F8E4M3Fnuz => StDtype::F8_E4M3FNUZ,
            DType::F8E5M2Fnuz => StDtype::F8_E5M2FNUZ,
            DType::F8E8M0 => StDtype::F8_E8M0,
            DType::C64 => StDtype::C64,
            DType::C128 | DType::C32 | DType::Other(_) => return None,
        })
    }

    /// The dtype a safetensors file declares, or `None` for sub-byte types this crate does not read.
    pub fn from_safetensors(d: StDtype) -> Option<DType> {
        Some(match d {
            StDtype::F64 => DType::F64,
            StDtype::F32 => DType::F32,
            StDtype::F16 => DType::F16,
            StDtype::BF16 => DType::BF16,
            StDtype::I64 => DType::I64,
            StDtype::I32 => DType::I32,
            StDtype::I16 => DType::I16,
            StDtype::I8 => DType::I8,
            StDtype::U8 => DType::U8,
            StDtype::U16 => DType::U16,
            StDtype::U32 => DType::U32,
            StDtype::U64 => DType::U64,
            StDtype::BOOL => DType::Bool,
            StDtype::F8_E4M3 => DType::F8E4M3,
            StDtype::F8_E5M2 => DType::F8E5M2,
            StDtype::F8_E4M3FNUZ => DType::F8E4M3Fnuz,
            StDtype::F8_E5M2FNUZ => DType::F8E5M2Fnuz,
            StDtype::F8_E8M0 => DType::F8E8M0,
            StDtype::C64 => DType::C64,
            _ => return None,
        })
    }

    /// The safetensors spelling (`F32`, `BF16`, ...) or the torch name for types it lacks.
    pub fn name(self) -> String {
        match self.to_safetensors() {
            Some(d) => d.to_string(),
            None => self.torch_name().to_string(),
        }
    }

    /// Whether `--dtype` casts this type (real floating types of 16 bits or more).
    pub fn is_castable_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
    }

    /// Why safetensors cannot hold this type, for refusals.
    pub fn unsupported_reason(self) -> Option<String> {
        match self.to_safetensors() {
            Some(_) => None,
            None => Some(format!("a {} tensor", self.torch_name())),
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_classes_and_names_round_trip() {
        assert_eq!(DType::from_storage_class("FloatStorage"), Some(DType::F32));
        assert_eq!(
            DType::from_storage_class("BFloat16Storage"),
            Some(DType::BF16)
        );
        assert_eq!(DType::from_storage_class("UntypedStorage"), Some(DType::U8));
        assert_eq!(
            DType::from_storage_class("QInt8Storage"),
            Some(DType::Other("qint8"))
        );
        assert_eq!(DType::from_storage_class("NopeStorage"), None);
        for (d, name, _) in TABLE {
            assert_eq!(DType::from_torch_name(name), Some(*d));
            assert_eq!(d.torch_name(), *name);
        }
        assert_eq!(DType::from_torch_name("float"), Some(DType::F32));
        assert_eq!(DType::from_torch_name("float8_e4m3fn"), Some(DType::F8E4M3));
    }

    #[test]
    fn safetensors_mapping_is_total_for_storable_types() {
        for (d, _, _) in TABLE {
            match d.to_safetensors() {
                Some(st) => {
                    assert_eq!(DType::from_safetensors(st), Some(*d));
                    assert_eq!(st.bitsize(), d.size() * 8);
                }
                None => assert!(matches!(d, DType::C128 | DType::C32)),
            }
        }
        assert_eq!(DType::Other("qint8").to_safetensors(), None);
        assert_eq!(DType::C64.swap_unit(), 4);
        assert_eq!(DType::C128.size(), 16);
    }

    #[test]
    fn export_scalar_types() {
        assert_eq!(DType::from_export_scalar_type(7), Some(DType::F32));
        assert_eq!(DType::from_export_scalar_type(13), Some(DType::BF16));
        assert_eq!(DType::from_export_scalar_type(35), Some(DType::U64));
        assert_eq!(DType::from_export_scalar_type(0), None);
    }
}
