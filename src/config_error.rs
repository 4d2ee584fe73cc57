//! A configuration error with the JSON path of the field it concerns: the one type every
//! section's validation (providers, models, consumers, quotas) shares, so it sits below
//! all of them.

use std::fmt;

/// A configuration error with the JSON path of the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "invalid llm-gateway configuration: {}", self.message)
        } else {
            write!(
                f,
                "invalid llm-gateway configuration at `{}`: {}",
                self.path, self.message
            )
        }
    }
}

pub(crate) fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// A value that goes into a header or a cluster name: not empty, no spaces or control
/// characters.
pub(crate) fn check_token(value: &str, path: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(err(path, "must not be empty"));
    }
    if value.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(err(path, "must not contain spaces or control characters"));
    }
    Ok(())
}
