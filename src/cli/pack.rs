//! `updraft pack DIR --version V --output F.tar.gz`.

use anyhow::Context;

use super::{exit, Ctx, PackArgs};
use crate::archive::pack::{pack_dir, DEFAULT_MTIME};

/// Pack a release directory; the mtime comes from `SOURCE_DATE_EPOCH` (the
/// reproducible-builds convention) so CI can stamp the commit time.
pub fn pack(_ctx: &Ctx, a: PackArgs) -> anyhow::Result<u8> {
    let mtime = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.trim().is_empty() => match s.trim().parse::<u64>() {
            Ok(t) => t,
            Err(_) => {
                errln!(
                    "error: SOURCE_DATE_EPOCH={s:?} is not a whole number of seconds since 1970; unset it or fix it"
                );
                return Ok(exit::USAGE);
            }
        },
        _ => DEFAULT_MTIME,
    };
    let info = pack_dir(&a.dir, &a.version, &a.output, mtime)
        .with_context(|| format!("cannot pack {} as version {}", a.dir.display(), a.version))?;
    outln!("{}", a.output.display())?;
    outln!("  version {}", a.version)?;
    outln!("  entries {}", info.entries)?;
    outln!("  size    {}", info.size)?;
    outln!("  sha256  {}", info.sha256)?;
    Ok(exit::OK)
}
