//! `updraft pack`.

use super::{Ctx, PackArgs};

pub fn pack(_ctx: &Ctx, _a: PackArgs) -> anyhow::Result<u8> {
    anyhow::bail!("pack: not implemented yet")
}
