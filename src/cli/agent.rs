//! Agent-side handlers: check, update, agent, pin, unpin, unblock, why, demo.

use super::{Ctx, DemoArgs, JsonArgs, VersionArg};

pub async fn check(_ctx: &Ctx, _a: JsonArgs) -> anyhow::Result<u8> {
    anyhow::bail!("check: not implemented yet")
}
pub async fn update(_ctx: &Ctx) -> anyhow::Result<u8> {
    anyhow::bail!("update: not implemented yet")
}
pub async fn daemon(_ctx: &Ctx) -> anyhow::Result<u8> {
    anyhow::bail!("agent: not implemented yet")
}
pub fn pin(_ctx: &Ctx, _a: VersionArg) -> anyhow::Result<u8> {
    anyhow::bail!("pin: not implemented yet")
}
pub fn unpin(_ctx: &Ctx) -> anyhow::Result<u8> {
    anyhow::bail!("unpin: not implemented yet")
}
pub fn unblock(_ctx: &Ctx, _a: VersionArg) -> anyhow::Result<u8> {
    anyhow::bail!("unblock: not implemented yet")
}
pub fn why(_ctx: &Ctx, _a: JsonArgs) -> anyhow::Result<u8> {
    anyhow::bail!("why: not implemented yet")
}
pub async fn demo(_ctx: &Ctx, _a: DemoArgs) -> anyhow::Result<u8> {
    anyhow::bail!("demo: not implemented yet")
}
