//! `keygate serve`: the gateway.

use crate::cli::ServeArgs;

/// Run the gateway until interrupted.
pub async fn run(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("serve is not built yet")
}
