//! The AGI protocol, independent of transport: the environment block, the
//! replies, the command lines, and a session that ties them together.

pub mod command;
pub mod env;
mod io;
pub mod reply;
pub mod session;
pub mod startup;

pub use command::{Arg, Command, CommandError};
pub use env::{Env, EnvError};
pub use io::{FdReader, Lookahead};
pub use reply::{parse_reply, Reply, ReplyError};
pub use session::{Session, SessionError, State};
