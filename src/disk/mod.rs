//! The machine's disk: the app root's layout, persisted state, the root lock and the
//! release directories themselves.

pub mod history;
pub mod layout;
pub mod lock;
pub mod order;
pub mod releases;
pub mod state;
