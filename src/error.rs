//! Errors more than one layer shares.

use std::path::PathBuf;

/// A config file that cannot be used: its path and what is wrong (the key,
/// or the line and column, is named in the message). Nothing was started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    pub message: String,
}
