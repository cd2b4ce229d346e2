//! Publisher-side handlers: keygen, publish, promote, yank, registry verify, serve.

use super::{Ctx, KeygenArgs, PromoteArgs, PublishArgs, RegistryVerifyArgs, ServeArgs, YankArgs};

pub fn keygen(_ctx: &Ctx, _a: KeygenArgs) -> anyhow::Result<u8> {
    anyhow::bail!("keygen: not implemented yet")
}
pub async fn publish(_ctx: &Ctx, _a: PublishArgs) -> anyhow::Result<u8> {
    anyhow::bail!("publish: not implemented yet")
}
pub async fn promote(_ctx: &Ctx, _a: PromoteArgs) -> anyhow::Result<u8> {
    anyhow::bail!("promote: not implemented yet")
}
pub async fn yank(_ctx: &Ctx, _a: YankArgs) -> anyhow::Result<u8> {
    anyhow::bail!("yank: not implemented yet")
}
pub async fn verify(_ctx: &Ctx, _a: RegistryVerifyArgs) -> anyhow::Result<u8> {
    anyhow::bail!("registry verify: not implemented yet")
}
pub async fn serve(_ctx: &Ctx, _a: ServeArgs) -> anyhow::Result<u8> {
    anyhow::bail!("serve: not implemented yet")
}
