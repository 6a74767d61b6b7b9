//! Log set-up: text or JSON lines on stderr, filtered by `--log`.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Install the global subscriber. Call once, first thing.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("invalid --log filter `{filter}`; {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("failed to install the logger; {e}"))
}
