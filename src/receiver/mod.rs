//! `autodial serve`: Alertmanager, Grafana and any script page people by
//! phone over HTTP. The payloads ([`payload`]) are pure data; the server
//! ([`server`], axum on tokio, only with the `serve` feature) calls the
//! same [`crate::alert::pager`] operations as the command line; so does
//! the status page ([`ui`], with `serve` too).

#[cfg(feature = "serve")]
mod oncall_api;
pub mod payload;
#[cfg(feature = "serve")]
pub mod server;
#[cfg(feature = "serve")]
pub mod ui;
