//! updraft: a pull-based release updater.
//!
//! The library holds everything the `updraft` binary does, so tests and other tools can
//! drive the same code. What they need is public: the registry contract (`registry`),
//! `transport`, `archive`, the activation pieces tests drive directly (`activate::health`,
//! `activate::services`) and `config`; the machine-side internals (`agent`, `disk`, the
//! CLI's handlers) are `pub(crate)`, so they can change without breaking anyone.
//!
//! Pure decisions (`decide`, `rollout`, `fleet`, the plans in `activate`) are kept apart
//! from I/O.

pub mod activate;
pub(crate) mod agent;
pub mod archive;
pub mod cli;
pub mod config;
pub(crate) mod disk;
pub mod error;
pub mod failpoint;
pub mod fsutil;
pub mod registry;
pub mod text;
pub mod time;
pub mod transport;
pub mod window;

// The small facade: the names other tools and tests reach for most, at the crate root.
pub use error::{classify, ErrorClass};
pub use registry::names::{AppName, Channel, Target, Version};
pub use transport::{open, open_store, Store, Transport, TransportError, TransportOptions};
