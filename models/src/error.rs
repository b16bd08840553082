//! Typed configuration errors: a `config.json` whose numbers cannot describe a working model
//! (a rotary base of 0, a negative scaling factor, no heads, sizes whose products overflow) is
//! refused when the configuration is checked, naming the field and its value, instead of
//! loading a model that silently computes garbage.

/// Why a model configuration is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A real-valued field that must be finite and positive (rotary base, scaling factor) is
    /// zero, negative or not finite.
    #[error("`{field}` is {value}: it must be a finite number > 0")]
    NotPositive {
        /// The field, as `config.json` spells it (`rope_parameters.factor`).
        field: String,
        /// The value found.
        value: f64,
    },
    /// A real-valued field that must be finite and non-negative (a norm epsilon) is not.
    #[error("`{field}` is {value}: it must be a finite number >= 0")]
    Negative {
        /// The field.
        field: String,
        /// The value found.
        value: f64,
    },
    /// A numeric field is present but not a number (or missing where its rotary type needs it).
    #[error("`{field}` is missing or not a number")]
    NotANumber {
        /// The field.
        field: String,
    },
    /// A size that must be at least 1 is 0.
    #[error("`{field}` is 0: it must be at least 1")]
    Zero {
        /// The field.
        field: String,
    },
    /// A size so large that the tensor sizes it implies overflow.
    #[error("`{field}` is {value}: the tensor sizes it implies overflow")]
    TooLarge {
        /// The field.
        field: String,
        /// The value found.
        value: usize,
    },
    /// Any other inconsistent or unsupported setting (the message says which).
    #[error("{0}")]
    Unsupported(String),
}

/// Result of a configuration check.
pub type ConfigResult<T> = std::result::Result<T, ConfigError>;

/// Checks a real field that must be finite and > 0.
pub(crate) fn positive(field: &str, value: f64) -> ConfigResult<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ConfigError::NotPositive {
            field: field.into(),
            value,
        })
    }
}

/// Checks a real field that must be finite and >= 0.
pub(crate) fn non_negative(field: &str, value: f64) -> ConfigResult<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(ConfigError::Negative {
            field: field.into(),
            value,
        })
    }
}

/// Checks a size that must be at least 1.
pub(crate) fn nonzero(field: &str, value: usize) -> ConfigResult<usize> {
    if value == 0 {
        Err(ConfigError::Zero {
            field: field.into(),
        })
    } else {
        Ok(value)
    }
}

/// Checks that the product of `factors` fits in a `usize`; `field` = `value` is blamed.
pub(crate) fn fits(field: &str, value: usize, factors: &[usize]) -> ConfigResult<usize> {
    factors
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| ConfigError::TooLarge {
            field: field.into(),
            value,
        })
}

/// A string from a configuration file, for messages: escaped (no control characters reach a
/// terminal) and cut to 40 characters.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 40;
    let n = s.chars().count();
    if n <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}… ({n} characters)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_field_and_value() {
        assert_eq!(positive("rope_theta", 2.0), Ok(2.0));
        for bad in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            let e = positive("rope_theta", bad).unwrap_err();
            assert!(e.to_string().starts_with("`rope_theta` is "), "{e}");
        }
        assert_eq!(
            positive("factor", -2.5).unwrap_err().to_string(),
            "`factor` is -2.5: it must be a finite number > 0"
        );
        assert_eq!(non_negative("eps", 0.0), Ok(0.0));
        assert!(non_negative("eps", -1e-5).is_err());
        assert_eq!(
            nonzero("n_head", 0),
            Err(ConfigError::Zero {
                field: "n_head".into()
            })
        );
        assert_eq!(fits("n_embd", 3, &[3, 4]), Ok(12));
        assert!(fits("n_embd", usize::MAX, &[usize::MAX, 2]).is_err());
    }

    #[test]
    fn shown_strings_are_escaped_and_bounded() {
        assert_eq!(shown("gelu"), "\"gelu\"");
        assert_eq!(shown("a\u{1b}[2J"), "\"a\\u{1b}[2J\"");
        let long = "x".repeat(1000);
        let s = shown(&long);
        assert!(s.len() < 80, "{s}");
        assert!(s.ends_with("(1000 characters)"), "{s}");
    }
}
