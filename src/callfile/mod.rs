//! Call files: the typed model, the strict writer, pbx_spool's reader, and
//! the spool that publishes them.

pub mod model;
pub mod parse;
pub mod spool;

pub use model::{Action, CallFile, CallerId, Problem, RenderError};
pub use parse::{parse, Diagnostic, Parsed, Severity};
pub use spool::{Pending, PublishError, Spool, SpoolError};
