//! Defaults taken from the environment Asterisk gives its AGI scripts
//! (`AST_SPOOL_DIR`, `AST_CONFIG_DIR`, `AST_LOG_DIR`), else the upstream
//! and Debian locations.

use std::path::PathBuf;

fn from_env(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(fallback),
    }
}

/// `$AST_SPOOL_DIR`, else `/var/spool/asterisk`.
pub fn spool_dir() -> PathBuf {
    from_env("AST_SPOOL_DIR", "/var/spool/asterisk")
}

/// `$AST_CONFIG_DIR`, else `/etc/asterisk`.
pub fn config_dir() -> PathBuf {
    from_env("AST_CONFIG_DIR", "/etc/asterisk")
}

/// `$AST_LOG_DIR`, else `/var/log/asterisk`.
pub fn log_dir() -> PathBuf {
    from_env("AST_LOG_DIR", "/var/log/asterisk")
}

/// `$AST_VAR_DIR`, else `/var/lib/asterisk`.
pub fn var_dir() -> PathBuf {
    from_env("AST_VAR_DIR", "/var/lib/asterisk")
}
