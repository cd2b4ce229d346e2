//! Release tarballs: packing a tree reproducibly and unpacking hostile input safely.

pub(crate) mod pack;
pub mod unpack;
pub mod version_file;
