//! The bench runner: `cargo run --release` runs the seed report's scenarios on strata's embedded
//! default (in-memory tiers) and prints the seed's figure beside ours.
//!
//! The seed's figures were measured on another machine (i7-1165G7, 8 threads, Go, string keys);
//! ours on this one with `u64` keys and values. The ratio column is therefore a cross-machine
//! comparison: it says how far apart the two engines are, not a controlled speedup. Same-machine
//! comparisons against peers are in `cargo bench` and PERF.md.
//!
//! Options: `--duration-ms N` per scenario (default 300), `--threads N` for the parallel rows
//! (default: available cores), `--only SUBSTRING` to run matching scenarios.

mod scenarios;

use std::time::Duration;

struct Options {
    duration: Duration,
    threads: usize,
    only: Option<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        duration: Duration::from_millis(300),
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--duration-ms" => {
                let ms: u64 = value()?
                    .parse()
                    .map_err(|e| format!("--duration-ms: {e}"))?;
                options.duration = Duration::from_millis(ms.max(1));
            }
            "--threads" => {
                let n: usize = value()?.parse().map_err(|e| format!("--threads: {e}"))?;
                options.threads = n.max(1);
            }
            "--only" => options.only = Some(value()?),
            "-h" | "--help" => {
                println!("usage: strata [--duration-ms N] [--threads N] [--only SUBSTRING]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("strata: {message}");
            std::process::exit(2);
        }
    };
    println!(
        "strata bench runner: seed scenarios, {} ms each, {} thread(s) for parallel rows",
        options.duration.as_millis(),
        options.threads
    );
    println!("seed: Go MultiLayerDAL on an i7-1165G7 (8 threads), string keys; strata: this machine, u64 keys/values.");
    println!("Cross-machine comparison: the ratio is seed ns/op ÷ strata ns/op (above 1 = strata faster).\n");
    println!(
        "| {:<44} | {:>14} | {:>13} | {:>7} | {:>14} |",
        "scenario", "seed ns/op", "strata ns/op", "ratio", "strata Mops/s"
    );
    println!(
        "|{:-<46}|{:->16}|{:->15}|{:->9}|{:->16}|",
        "", "", "", "", ""
    );
    for scenario in scenarios::all() {
        if let Some(only) = &options.only {
            if !scenario.name.contains(only.as_str()) {
                continue;
            }
        }
        let threads = if scenario.parallel {
            options.threads
        } else {
            1
        };
        let result = (scenario.run)(threads, options.duration);
        let ns_per_op = result.elapsed.as_nanos() as f64 / result.ops.max(1) as f64;
        let name = if scenario.parallel {
            format!("{} ({threads} thr)", scenario.name)
        } else {
            scenario.name.to_string()
        };
        println!(
            "| {:<44} | {:>14.1} | {:>13.1} | {:>6.1}x | {:>14.2} |",
            name,
            scenario.seed_ns,
            ns_per_op,
            scenario.seed_ns / ns_per_op,
            result.ops as f64 / result.elapsed.as_secs_f64() / 1e6
        );
    }
    println!("\nBatch rows are per batch of 10 keys; parallel rows are wall time / total ops (aggregate).");
}
