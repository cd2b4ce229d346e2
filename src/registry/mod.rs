//! The registry contract: what CI publishers and agents share.
//!
//! Validated names, signed channel and release documents, keys, rollout buckets, and the
//! publisher's operations (`publish`, `channel` changes, `audit`, on top of `signed`
//! document reads and writes). Nothing here knows about an app root on a machine, so a
//! publisher (or a second implementation reading this code) needs only this folder,
//! `transport/` and `archive/`.

pub mod audit;
pub mod channel;
pub(crate) mod fleet;
pub mod keys;
pub mod manifest;
pub mod names;
pub mod publish;
pub mod report;
pub mod rollout;
pub mod serve;
pub mod signed;
