//! updraft: a pull-based release updater.
//!
//! The library holds everything the `updraft` binary does, so tests and other tools can
//! drive the same code. Pure decisions (`decide`, `rollout`, the plans in `activate`) are kept
//! apart from I/O.

pub mod activate;
pub mod agent;
pub mod archive;
pub mod cli;
pub mod config;
pub mod disk;
pub mod error;
pub mod fsutil;
pub mod registry;
pub mod time;
pub mod transport;
