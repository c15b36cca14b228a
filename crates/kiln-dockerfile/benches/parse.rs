//! Parse (and plan + expand) a generated 10,000-line Dockerfile, next to a
//! baseline measured in the same run: splitting the same bytes into lines
//! and scanning every byte once. Prints milliseconds and the ratio.
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use kiln_dockerfile::{PlanOptions, parse};

const LINES: usize = 10_000;

/// A realistic mix: global ARGs, stages, RUN with continuations, ENV/LABEL,
/// COPY --from with flags, heredocs, comments and blank lines.
fn generate() -> String {
    let mut s = String::from("# syntax=docker/dockerfile:1\nARG BASE=debian:12\nARG VERSION=1.0\n");
    let mut stage = 0;
    while s.lines().count() < LINES {
        s.push_str(&format!(
            "\n# stage {stage}\nFROM ${{BASE}} AS s{stage}\nARG VERSION\n"
        ));
        s.push_str("ENV PATH=/opt/bin:$PATH LANG=C.UTF-8 APP_VERSION=${VERSION:-dev}\n");
        s.push_str("LABEL org.opencontainers.image.title=\"kiln bench\" maintainer=\"someone\"\n");
        for i in 0..8 {
            s.push_str(&format!(
                "RUN --mount=type=cache,target=/var/cache/apt{i} apt-get update \\\n    && apt-get install -y --no-install-recommends pkg{i} \\\n    && rm -rf /var/lib/apt/lists/*\n"
            ));
            s.push_str(&format!(
                "COPY --chown=1000:1000 --chmod=0644 src/{i}/ /app/{i}/\n"
            ));
            if stage > 0 {
                s.push_str(&format!("COPY --from=s{} /app/{i} /prev/{i}\n", stage - 1));
            }
        }
        s.push_str("COPY <<EOF /etc/motd\nbuilt by kiln $APP_VERSION\nEOF\n");
        s.push_str(
            "WORKDIR /app\nUSER 1000\nEXPOSE 8080/tcp\nCMD [\"/app/run\", \"--port\", \"8080\"]\n",
        );
        stage += 1;
    }
    s
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let src = generate();
    let bytes = src.as_bytes();
    let lines = src.lines().count();
    let runs = 15;

    let baseline = best_of(runs, || {
        let mut n = 0usize;
        for line in bytes.split(|&b| b == b'\n') {
            n += line.iter().filter(|b| !b.is_ascii_whitespace()).count();
        }
        black_box(n);
    });
    let parse_time = best_of(runs, || {
        black_box(parse("Dockerfile", black_box(bytes)).expect("bench Dockerfile parses"));
    });
    let df = parse("Dockerfile", bytes).expect("bench Dockerfile parses");
    let opts = PlanOptions::default();
    let plan_time = best_of(runs, || {
        let plan = df.plan(&opts).expect("bench Dockerfile plans");
        for stage in &plan.stages {
            let mut env = stage.env.clone();
            for ins in &stage.instructions {
                let e = env.expand(ins).expect("expands");
                env.apply(&e);
            }
        }
        black_box(plan);
    });
    let stages = df.stages.len();
    println!(
        "kiln-dockerfile parse bench: {lines} lines, {} bytes, {stages} stages (best of {runs})",
        bytes.len()
    );
    println!(
        "  baseline (split lines + scan bytes): {:8.3} ms",
        ms(baseline)
    );
    println!(
        "  kiln parse:                         {:8.3} ms  ({:.1}x baseline)",
        ms(parse_time),
        ms(parse_time) / ms(baseline)
    );
    println!(
        "  kiln plan + expand every step:      {:8.3} ms  ({:.1}x baseline)",
        ms(plan_time),
        ms(plan_time) / ms(baseline)
    );
    println!(
        "  parse + plan:                       {:8.3} ms  (target: well under 100 ms)",
        ms(parse_time + plan_time)
    );
}
