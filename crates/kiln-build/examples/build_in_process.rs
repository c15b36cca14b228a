//! Runs a kiln build inside this process and prints its step events.
//!
//! ```text
//! cargo run -p kiln-build --example build_in_process -- [CONTEXT_DIR [OCI_LAYOUT_DIR]]
//! ```
//!
//! CONTEXT_DIR holds a `Dockerfile`; without it, a small `FROM scratch` context
//! is made in a temporary directory. The image is written as an OCI layout to
//! OCI_LAYOUT_DIR (by default inside the temporary directory, removed at the
//! end). Nothing is pushed. RUN steps need root or user namespaces.

use std::path::PathBuf;

use kiln_build::{BuildEvent, BuildOptions, ContextSource, build};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let context = match args.next() {
        Some(dir) => dir,
        None => demo_context(&temp.path().join("context"))?,
    };
    let layout = args.next().unwrap_or_else(|| temp.path().join("image"));

    let mut options = BuildOptions::new(ContextSource::Dir(context));
    options.kaniko_dir = temp.path().join("work");
    options.no_push = true;
    options.oci_layout_path = Some(layout.clone());

    let outcome = build(&options, &print_event).await?;
    println!(
        "built {} ({} layers, {} bytes) into {}",
        outcome.digest,
        outcome.layers.len(),
        outcome.size,
        layout.display()
    );
    Ok(())
}

/// The observer: called from the engine's tasks, so it only prints.
fn print_event(event: &BuildEvent) {
    match event {
        BuildEvent::StepStarted { id, text } => println!("{id}: {text}"),
        BuildEvent::RunOutput { line, .. } => println!("    {line}"),
        BuildEvent::StepFinished { id, elapsed, layer } => match layer {
            Some(layer) => println!("{id}: done in {elapsed:.2?}, layer {layer}"),
            None => println!("{id}: done in {elapsed:.2?}"),
        },
        BuildEvent::Warning { message } => println!("warning: {message}"),
        _ => {}
    }
}

/// A context with a Dockerfile copying one file into an empty image.
fn demo_context(dir: &std::path::Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("hello.txt"), "hello from kiln\n")?;
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY hello.txt /\nLABEL example=build_in_process\n",
    )?;
    Ok(dir.to_path_buf())
}
