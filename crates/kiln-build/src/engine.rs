//! The build entry point.

use crate::error::BuildError;
use crate::events::BuildObserver;
use crate::options::BuildOptions;
use crate::outcome::BuildOutcome;

/// Builds the image described by `options`, reporting progress to `observer`.
pub async fn build(
    options: &BuildOptions,
    observer: &dyn BuildObserver,
) -> Result<BuildOutcome, BuildError> {
    let _ = (options, observer);
    Err(BuildError::NotYetSupported(
        "the build engine is being written; this kiln cannot build images yet".into(),
    ))
}
