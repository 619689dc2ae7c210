//! The bench runner: `cargo run --release` runs the seed report's scenarios on strata's embedded
//! default (in-memory tiers) and prints the seed's figure beside ours.
//!
//! The seed's figures were measured on another machine (i7-1165G7, 8 threads, Go, string keys);
//! ours on this one with `u64` keys and values. The ratio column is therefore a cross-machine
//! comparison: it says how far apart the two engines are, not a controlled speedup. Same-machine
//! comparisons against peers are in `cargo bench` and PERF.md.
//!
//! `strata --help` lists the options (threads, duration, layer count, key distribution, JSON
//! output, a scaling plot); `strata replay TRACE.u64.gz` replays a cache trace through strata's
//! memory tier and prints hit ratios.

mod json;
mod plot;
mod redis;
mod replay;
mod scenarios;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use replay::Size;
use scenarios::Config;
use strata_bench::keys::KeyDist;

/// The thread counts of the scaling plot.
const PLOT_THREADS: [usize; 4] = [1, 2, 4, 8];

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "strata's bench runner: the seed report's scenarios on in-memory caches, the seed's \
             figure beside ours",
    long_about = "strata's bench runner: the seed report's scenarios on in-memory caches, the \
                  seed's figure beside ours.\n\nThe seed's figures were measured on another \
                  machine (Go MultiLayerDAL, i7-1165G7, 8 threads, string keys); ours on this \
                  one with u64 keys and values, so the ratio column (seed ns/op ÷ strata ns/op) \
                  is a cross-machine comparison, not a controlled speedup.",
    args_conflicts_with_subcommands = true,
    after_help = "Run `strata replay --help` for trace replays, `strata redis --help` for the Redis layer's rows."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Replay cache traces through strata's memory tier and print hit ratios per cache size
    Replay(ReplayArgs),
    /// The Redis layer against a throwaway local redis-server (needs redis-server on PATH):
    /// hits, misses, batches and invalidation delay beside raw redis-rs round trips
    Redis(RedisArgs),
}

#[derive(Args)]
struct RedisArgs {
    /// How long each row runs, in milliseconds
    #[arg(long, value_name = "N", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    duration_ms: u64,
}

#[derive(Args)]
struct BenchArgs {
    /// Threads for the parallel rows [default: available cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,

    /// How long each scenario runs, in milliseconds
    #[arg(long, value_name = "N", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    duration_ms: u64,

    /// Layer count of the embedded default used by the generic rows (rows whose seed scenario
    /// names a layer count keep theirs)
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=3))]
    layers: u8,

    /// Key distribution of the get, set and mixed rows over 10,000 keys (zipf: exponent 1.0;
    /// delete rows and the promotion row stay uniform)
    #[arg(long, value_name = "DIST", value_enum, default_value_t = KeyDist::Uniform)]
    keys: KeyDist,

    /// Run only the scenarios whose name contains SUBSTRING (case-insensitive); also filters
    /// the --plot curves
    #[arg(long, value_name = "SUBSTRING")]
    only: Option<String>,

    /// Print the results as JSON (an array, one object per row) instead of the table
    #[arg(long)]
    json: bool,

    /// Also measure strata's scaling (aggregate Mops/s at 1, 2, 4 and 8 threads for read-only
    /// hits, mixed 80/10/10 and set-only) and draw it as an SVG
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    /// Trace files: gzip-compressed arrays of little-endian u64 keys (shared/traces format)
    #[arg(value_name = "FILE.u64.gz", required = true)]
    files: Vec<PathBuf>,

    /// Cache sizes, comma-separated: entry counts (1000) or percentages of the trace's unique
    /// keys (0.3%)
    #[arg(long, value_name = "SIZES", value_delimiter = ',', default_value = replay::DEFAULT_SIZES)]
    sizes: Vec<Size>,

    /// Print the results as JSON (an array, one object per trace and size)
    #[arg(long)]
    json: bool,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Replay(args)) => run_replay(&args),
        Some(Command::Redis(args)) => redis::run(Duration::from_millis(args.duration_ms)),
        None => run_bench(&cli.bench),
    };
    if let Err(message) = result {
        eprintln!("strata: {message}");
        std::process::exit(1);
    }
}

/// A progress bar on stderr; indicatif draws nothing when stderr is not a terminal.
fn progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {pos:>3}/{len} [{elapsed}] {wide_msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// One row of the results.
struct Row {
    scenario: String,
    threads: usize,
    seed_ns: f64,
    strata_ns: f64,
    mops: f64,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.seed_ns / self.strata_ns
    }
}

fn run_bench(args: &BenchArgs) -> Result<(), String> {
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get()),
        usize::from,
    );
    let duration = Duration::from_millis(args.duration_ms);
    let config = Config {
        layers: usize::from(args.layers),
        keys: args.keys,
    };
    let only = args.only.as_deref().map(str::to_lowercase);
    let selected = |name: &str| {
        only.as_deref()
            .is_none_or(|only| name.to_lowercase().contains(only))
    };
    let scenarios: Vec<_> = scenarios::all(config)
        .into_iter()
        .filter(|s| selected(&s.name))
        .collect();
    let curves: Vec<_> = match &args.plot {
        Some(_) => scenarios::curves(config)
            .into_iter()
            .filter(|c| selected(&c.name))
            .collect(),
        None => Vec::new(),
    };
    if scenarios.is_empty()
        && !scenarios::design()
            .iter()
            .any(|row| selected(&row.scenario.name))
    {
        return Err(format!(
            "no scenario matches --only {:?}",
            args.only.as_deref().unwrap_or_default()
        ));
    }
    if args.plot.is_some() && curves.is_empty() {
        return Err(format!(
            "--plot: no scaling curve (read-only hits, mixed, set-only) matches --only {:?}",
            args.only.as_deref().unwrap_or_default()
        ));
    }

    let bar = progress((scenarios.len() + curves.len() * PLOT_THREADS.len()) as u64);
    let label = |scenario: &scenarios::Scenario| {
        if scenario.parallel {
            format!("{} ({threads} thr)", scenario.name)
        } else {
            scenario.name.clone()
        }
    };
    let width = scenarios
        .iter()
        .map(|s| label(s).chars().count())
        .max()
        .unwrap_or(0)
        .max(40);
    let keys = args.keys.describe();
    if !args.json {
        println!(
            "strata bench runner: seed scenarios, {} ms each, {threads} thread(s) for parallel rows",
            duration.as_millis(),
        );
        println!(
            "embedded default: {} in-memory layers (rows naming another count keep it); get/set/mixed keys: {keys} over 10,000 keys",
            config.layers
        );
        println!("seed: Go MultiLayerDAL on an i7-1165G7 (8 threads), string keys; strata: this machine, u64 keys/values.");
        println!("Cross-machine comparison: the ratio is seed ns/op ÷ strata ns/op (above 1 = strata faster).\n");
        println!(
            "| {:<width$} | {:>14} | {:>13} | {:>7} | {:>14} |",
            "scenario", "seed ns/op", "strata ns/op", "ratio", "strata Mops/s"
        );
        println!(
            "|{:-<w2$}|{:->16}|{:->15}|{:->9}|{:->16}|",
            "",
            "",
            "",
            "",
            "",
            w2 = width + 2
        );
    }

    let mut rows = Vec::with_capacity(scenarios.len());
    for scenario in &scenarios {
        let threads = if scenario.parallel { threads } else { 1 };
        bar.set_message(scenario.name.clone());
        let outcome = scenarios::run(scenario, config.keys, threads, duration);
        let row = Row {
            scenario: scenario.name.clone(),
            threads,
            seed_ns: scenario.seed_ns,
            strata_ns: outcome.ns_per_op(),
            mops: outcome.mops(),
        };
        if !args.json {
            bar.suspend(|| {
                println!(
                    "| {:<width$} | {:>14.1} | {:>13.1} | {:>6.1}x | {:>14.2} |",
                    label(scenario),
                    row.seed_ns,
                    row.strata_ns,
                    row.ratio(),
                    row.mops
                );
            });
        }
        rows.push(row);
        bar.inc(1);
    }

    // The design card's rows: what filters, heat and queues buy (single-threaded).
    let design: Vec<_> = scenarios::design()
        .into_iter()
        .filter(|row| selected(&row.scenario.name))
        .collect();
    let mut design_ns: Vec<(&'static str, f64)> = Vec::new();
    if !design.is_empty() && !args.json {
        bar.suspend(|| {
            println!(
                "\nDesign-card rows (negative filters, heat-gated promotion, promotion queues; remote layers spin {} us per call):\n",
                scenarios::REMOTE_RTT.as_micros()
            );
            println!(
                "| {:<62} | {:>13} | {:>8} | target",
                "row", "strata ns/op", "vs base"
            );
            println!("|{:-<64}|{:->15}|{:->10}|--------", "", "", "");
        });
    }
    for row in &design {
        bar.set_message(row.scenario.name.clone());
        let outcome = scenarios::run(&row.scenario, config.keys, 1, duration);
        let ns = outcome.ns_per_op();
        let name: &'static str = row.scenario.name.clone().leak();
        design_ns.push((name, ns));
        let versus = row
            .baseline
            .and_then(|base| design_ns.iter().find(|(n, _)| *n == base))
            .map_or("-".to_owned(), |(_, base)| format!("{:.2}x", ns / base));
        if !args.json {
            bar.suspend(|| {
                println!(
                    "| {:<62} | {:>13.1} | {:>8} | {}",
                    row.scenario.name, ns, versus, row.target
                );
            });
        }
        rows.push(Row {
            scenario: row.scenario.name.clone(),
            threads: 1,
            seed_ns: row.scenario.seed_ns,
            strata_ns: ns,
            mops: outcome.mops(),
        });
    }

    let mut series = Vec::with_capacity(curves.len());
    for curve in &curves {
        let mut points = Vec::with_capacity(PLOT_THREADS.len());
        for threads in PLOT_THREADS {
            bar.set_message(format!("scaling: {} at {threads} thr", curve.name));
            points.push((
                threads,
                scenarios::run(curve, config.keys, threads, duration).mops(),
            ));
            bar.inc(1);
        }
        series.push(plot::Series {
            name: curve.name.clone(),
            points,
        });
    }
    bar.finish_and_clear();

    if args.json {
        print!("{}", json::rows(&rows));
    } else {
        println!("\nBatch rows are per batch of 10 keys; parallel rows are wall time / total ops (aggregate).");
    }

    if let Some(path) = &args.plot {
        if !args.json {
            print_scaling(&series);
        }
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let subtitle = format!(
            "this machine ({cores} cores), {} in-memory layers, {keys} keys, {} ms per point, u64 keys/values",
            config.layers,
            duration.as_millis()
        );
        plot::draw(
            path,
            "strata scaling: aggregate Mops/s vs threads",
            &subtitle,
            &series,
        )?;
        eprintln!("strata: scaling plot written to {}", path.display());
    }
    Ok(())
}

fn print_scaling(series: &[plot::Series]) {
    let width = series
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(40);
    println!("\nScaling (strata, aggregate Mops/s; plotted):");
    print!("| {:<width$} |", "workload");
    for threads in PLOT_THREADS {
        print!(" {:>8} |", format!("{threads} thr"));
    }
    println!();
    print!("|{:-<w2$}|", "", w2 = width + 2);
    for _ in PLOT_THREADS {
        print!("{:->10}|", "");
    }
    println!();
    for s in series {
        print!("| {:<width$} |", s.name);
        for &(_, mops) in &s.points {
            print!(" {mops:>8.2} |");
        }
        println!();
    }
}

/// One replayed (trace, size).
struct ReplayRow {
    trace: String,
    size: usize,
    unique: usize,
    requests: usize,
    hits: u64,
}

impl ReplayRow {
    fn hit_ratio(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.hits as f64 * 100.0 / self.requests as f64
        }
    }
}

fn run_replay(args: &ReplayArgs) -> Result<(), String> {
    if let Some(missing) = args.files.iter().find(|path| !path.is_file()) {
        return Err(format!("{}: no such trace file", missing.display()));
    }
    let bar = progress((args.files.len() * args.sizes.len()) as u64);
    if !args.json {
        println!("strata replay: one LayerSpec::memory layer, promotion off; for each key get, on a miss set.");
        println!("Hit ratio = hits / requests; percentage sizes are of the trace's unique keys (rounded down).\n");
    }
    let mut rows = Vec::new();
    for path in &args.files {
        let trace = trace_name(path);
        bar.set_message(format!("decoding {}", path.display()));
        let decoded = replay::decode(path)?;
        if !args.json {
            bar.suspend(|| {
                println!(
                    "{trace}: {} requests, {} unique keys",
                    thousands(decoded.keys.len()),
                    thousands(decoded.unique)
                );
                println!(
                    "| {:>9} | {:>11} | {:>11} | {:>11} | {:>9} |",
                    "size", "% of unique", "hits", "hit ratio %", "time"
                );
                println!(
                    "|{:->11}|{:->13}|{:->13}|{:->13}|{:->11}|",
                    "", "", "", "", ""
                );
            });
        }
        for &size in &args.sizes {
            let entries = size.entries(decoded.unique);
            bar.set_message(format!("{trace} @ {entries} entries"));
            let start = Instant::now();
            let hits = replay::replay(&decoded.keys, entries);
            let row = ReplayRow {
                trace: trace.clone(),
                size: entries,
                unique: decoded.unique,
                requests: decoded.keys.len(),
                hits,
            };
            if !args.json {
                let elapsed = start.elapsed();
                bar.suspend(|| {
                    println!(
                        "| {:>9} | {:>11.2} | {:>11} | {:>11.2} | {:>9.2?} |",
                        thousands(row.size),
                        row.size as f64 * 100.0 / row.unique.max(1) as f64,
                        thousands(row.hits as usize),
                        row.hit_ratio(),
                        elapsed
                    );
                });
            }
            rows.push(row);
            bar.inc(1);
        }
        if !args.json {
            bar.suspend(|| println!());
        }
    }
    bar.finish_and_clear();
    if args.json {
        print!("{}", json::replay_rows(&rows));
    }
    Ok(())
}

/// The trace's name: its file name without `.u64.gz`.
fn trace_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    file.strip_suffix(".u64.gz")
        .map(str::to_owned)
        .unwrap_or(file)
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cli_parses() {
        let cli = Cli::try_parse_from([
            "strata",
            "--threads",
            "4",
            "--layers",
            "3",
            "--keys",
            "zipf",
            "--json",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.bench.threads, Some(4));
        assert_eq!(cli.bench.layers, 3);
        assert_eq!(cli.bench.keys, KeyDist::Zipf);
        assert!(Cli::try_parse_from(["strata", "--layers", "4"]).is_err());
        assert!(Cli::try_parse_from(["strata", "--threads", "0"]).is_err());

        let cli =
            Cli::try_parse_from(["strata", "replay", "a.u64.gz", "--sizes", "1000,1%"]).unwrap();
        let Some(Command::Replay(args)) = cli.command else {
            panic!("replay subcommand");
        };
        assert_eq!(args.sizes, [Size::Entries(1000), Size::Percent(1.0)]);
        let cli = Cli::try_parse_from(["strata", "replay", "a.u64.gz"]).unwrap();
        let Some(Command::Replay(args)) = cli.command else {
            panic!("replay subcommand");
        };
        assert_eq!(args.sizes.len(), 6);
    }

    #[test]
    fn thousands_separates() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(914_145), "914,145");
        assert_eq!(thousands(5_000_000), "5,000,000");
    }
}
