//! updraft: a pull-based release updater.
//!
//! The library holds everything the `updraft` binary does, so tests and other tools can
//! drive the same code. Pure decisions (`decide`, `rollout`, `prune` in `store`) are kept
//! apart from I/O.

pub mod agent;
pub mod cli;
pub mod config;
pub mod decide;
pub mod demo;
pub mod deploy;
pub mod fsutil;
pub mod health;
pub mod keys;
pub mod layout;
pub mod lock;
pub mod logging;
pub mod manifest;
pub mod names;
pub mod pack;
pub mod process;
pub mod publish;
pub mod restarts;
pub mod rollout;
pub mod serve;
pub mod services;
pub mod source;
pub mod state;
pub mod store;
pub mod transport;
pub mod unpack;

/// The documented exit code for a typed library error, if it has one.
pub fn exit_code_hint(e: &(dyn std::error::Error + 'static)) -> Option<u8> {
    use cli::exit;
    if let Some(d) = e.downcast_ref::<deploy::DeployError>() {
        return Some(d.exit_code());
    }
    if let Some(a) = e.downcast_ref::<agent::AgentError>() {
        return Some(a.exit_code());
    }
    if e.downcast_ref::<manifest::ManifestError>().is_some()
        || e.downcast_ref::<keys::KeyError>().is_some()
    {
        return Some(exit::VERIFY);
    }
    if e.downcast_ref::<unpack::UnpackError>().is_some() {
        return Some(exit::VERIFY);
    }
    if let Some(t) = e.downcast_ref::<transport::TransportError>() {
        if matches!(t, transport::TransportError::NotFound { .. }) {
            return Some(exit::NOT_FOUND);
        }
    }
    None
}
