//! Release tarballs: packing a tree reproducibly and unpacking hostile input safely.

pub mod pack;
pub mod unpack;
