//! Push-mode handlers: deploy, rollback, list, status, prune.

use super::{Ctx, DeployArgs, JsonArgs, PruneArgs, RollbackArgs};

pub async fn deploy(_ctx: &Ctx, _a: DeployArgs) -> anyhow::Result<u8> {
    anyhow::bail!("deploy: not implemented yet")
}
pub async fn rollback(_ctx: &Ctx, _a: RollbackArgs) -> anyhow::Result<u8> {
    anyhow::bail!("rollback: not implemented yet")
}
pub fn list(_ctx: &Ctx, _a: JsonArgs) -> anyhow::Result<u8> {
    anyhow::bail!("list: not implemented yet")
}
pub fn status(_ctx: &Ctx, _a: JsonArgs) -> anyhow::Result<u8> {
    anyhow::bail!("status: not implemented yet")
}
pub fn prune(_ctx: &Ctx, _a: PruneArgs) -> anyhow::Result<u8> {
    anyhow::bail!("prune: not implemented yet")
}
