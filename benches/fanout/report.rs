//! The benchmark's figures: one run's, their medians over runs, and where they are written (the
//! table on standard output, `target/fanout.json`, and the latest-run section of
//! docs/performance.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::repo_dir;

/// One run at one N. Times in milliseconds; a ratio is Federator's figure over the floor's in
/// the same run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    pub regions: usize,
    pub cold_p50_ms: f64,
    pub cold_p99_ms: f64,
    pub cold_floor_p50_ms: f64,
    pub cold_floor_p99_ms: f64,
    pub cold_p50_ratio: f64,
    pub cold_p99_ratio: f64,
    pub update_p50_ms: f64,
    pub update_p99_ms: f64,
    pub update_floor_p50_ms: f64,
    pub update_floor_p99_ms: f64,
    pub update_p50_ratio: f64,
    pub update_p99_ratio: f64,
    pub restart_all_p50_ms: f64,
    pub restart_all_p99_ms: f64,
    pub rotation_p50_ms: f64,
    pub rotation_p99_ms: f64,
    pub rotation_floor_p50_ms: f64,
    pub rotation_floor_p99_ms: f64,
    pub rotation_p50_ratio: f64,
    pub rotation_p99_ratio: f64,
    pub steady_writes_per_minute: f64,
    pub steady_reads_per_minute: f64,
    /// Federator's CPU (user + system) per region per update, over each change until it settled.
    pub cpu_ms_per_region_per_update: f64,
    /// Federator's CPU per region per minute while nothing changes.
    pub cpu_ms_per_region_per_minute_steady: f64,
    pub peak_rss_mib: f64,
    pub rss_per_region_mib: f64,
    pub cpu_seconds: f64,
}

pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn ratio(federator: f64, floor: f64) -> f64 {
    if floor > 0.0 {
        federator / floor
    } else {
        f64::NAN
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| !v.is_nan());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// Each figure's median over `runs` (of one N), figure by figure.
pub fn medians(runs: &[Figures]) -> Figures {
    let of = |figure: fn(&Figures) -> f64| median(runs.iter().map(figure).collect());
    Figures {
        regions: runs.first().map(|r| r.regions).unwrap_or_default(),
        cold_p50_ms: of(|r| r.cold_p50_ms),
        cold_p99_ms: of(|r| r.cold_p99_ms),
        cold_floor_p50_ms: of(|r| r.cold_floor_p50_ms),
        cold_floor_p99_ms: of(|r| r.cold_floor_p99_ms),
        cold_p50_ratio: of(|r| r.cold_p50_ratio),
        cold_p99_ratio: of(|r| r.cold_p99_ratio),
        update_p50_ms: of(|r| r.update_p50_ms),
        update_p99_ms: of(|r| r.update_p99_ms),
        update_floor_p50_ms: of(|r| r.update_floor_p50_ms),
        update_floor_p99_ms: of(|r| r.update_floor_p99_ms),
        update_p50_ratio: of(|r| r.update_p50_ratio),
        update_p99_ratio: of(|r| r.update_p99_ratio),
        restart_all_p50_ms: of(|r| r.restart_all_p50_ms),
        restart_all_p99_ms: of(|r| r.restart_all_p99_ms),
        rotation_p50_ms: of(|r| r.rotation_p50_ms),
        rotation_p99_ms: of(|r| r.rotation_p99_ms),
        rotation_floor_p50_ms: of(|r| r.rotation_floor_p50_ms),
        rotation_floor_p99_ms: of(|r| r.rotation_floor_p99_ms),
        rotation_p50_ratio: of(|r| r.rotation_p50_ratio),
        rotation_p99_ratio: of(|r| r.rotation_p99_ratio),
        steady_writes_per_minute: of(|r| r.steady_writes_per_minute),
        steady_reads_per_minute: of(|r| r.steady_reads_per_minute),
        cpu_ms_per_region_per_update: of(|r| r.cpu_ms_per_region_per_update),
        cpu_ms_per_region_per_minute_steady: of(|r| r.cpu_ms_per_region_per_minute_steady),
        peak_rss_mib: of(|r| r.peak_rss_mib),
        rss_per_region_mib: of(|r| r.rss_per_region_mib),
        cpu_seconds: of(|r| r.cpu_seconds),
    }
}

/// Where and how the figures were taken.
#[derive(Debug, Serialize)]
pub struct Provenance {
    pub date: String,
    pub commit: String,
    pub command: String,
    pub machine: String,
    pub runs_per_n: usize,
    pub changes: u64,
    pub steady_seconds: u64,
}

impl Provenance {
    pub fn gather(runs_per_n: usize, changes: u64, steady_seconds: u64) -> Provenance {
        let output = |program: &str, args: &[&str]| {
            std::process::Command::new(program)
                .args(args)
                .current_dir(repo_dir())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let mut commit = output("git", &["rev-parse", "--short", "HEAD"]);
        if !output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() {
            commit.push_str(" (with uncommitted changes)");
        }
        let settings: Vec<String> = [
            "FANOUT_REGIONS",
            "FANOUT_RUNS",
            "FANOUT_CHANGES",
            "FANOUT_STEADY_SECONDS",
        ]
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| format!("{name}={v}")))
        .collect();
        let command = format!(
            "{} cargo bench -p federator --bench fanout",
            settings.join(" ")
        )
        .trim()
        .to_string();
        Provenance {
            date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            commit,
            command,
            machine: machine(),
            runs_per_n,
            changes,
            steady_seconds,
        }
    }
}

/// CPU model, CPU count and memory, from /proc.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or_default();
    format!("{cpus} CPUs ({model}), {memory_gib:.0} GiB")
}

fn shown(value: f64, unit: &str) -> String {
    if value.is_nan() {
        "-".into()
    } else if unit == "ms" && value < 10.0 {
        format!("{value:.1} ms")
    } else if unit == "ms" {
        format!("{value:.0} ms")
    } else {
        format!("{value:.2}")
    }
}

/// The two Markdown tables: times against the floor, and what they cost.
pub fn tables(rows: &[Figures]) -> String {
    let mut out = String::new();
    out.push_str(
        "| regions | update p50 | floor p50 | ratio p50 | update p99 | floor p99 | ratio p99 | rotation p50 | floor p50 | ratio p50 | rotation p99 | floor p99 | ratio p99 | cold start p50 | floor p50 | cold start p99 | floor p99 | ratio p99 | restart-all p50 | restart-all p99 |\n",
    );
    out.push_str(&format!("|{}\n", "---|".repeat(20)));
    for r in rows {
        let cells = [
            shown(r.update_p50_ms, "ms"),
            shown(r.update_floor_p50_ms, "ms"),
            shown(r.update_p50_ratio, ""),
            shown(r.update_p99_ms, "ms"),
            shown(r.update_floor_p99_ms, "ms"),
            shown(r.update_p99_ratio, ""),
            shown(r.rotation_p50_ms, "ms"),
            shown(r.rotation_floor_p50_ms, "ms"),
            shown(r.rotation_p50_ratio, ""),
            shown(r.rotation_p99_ms, "ms"),
            shown(r.rotation_floor_p99_ms, "ms"),
            shown(r.rotation_p99_ratio, ""),
            shown(r.cold_p50_ms, "ms"),
            shown(r.cold_floor_p50_ms, "ms"),
            shown(r.cold_p99_ms, "ms"),
            shown(r.cold_floor_p99_ms, "ms"),
            shown(r.cold_p99_ratio, ""),
            shown(r.restart_all_p50_ms, "ms"),
            shown(r.restart_all_p99_ms, "ms"),
        ];
        out.push_str(&format!("| {} | {} |\n", r.regions, cells.join(" | ")));
    }
    out.push('\n');
    out.push_str(
        "| regions | CPU ms / region / update | CPU ms / region / min steady | steady writes/min | steady reads/min | peak RSS | RSS/region | CPU s |\n",
    );
    out.push_str(&format!("|{}\n", "---|".repeat(8)));
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.0} | {:.0} | {:.1} MiB | {:.2} MiB | {:.1} |\n",
            r.regions,
            r.cpu_ms_per_region_per_update,
            r.cpu_ms_per_region_per_minute_steady,
            r.steady_writes_per_minute,
            r.steady_reads_per_minute,
            r.peak_rss_mib,
            r.rss_per_region_mib,
            r.cpu_seconds,
        ));
    }
    out
}

#[derive(Serialize)]
struct Document<'a> {
    provenance: &'a Provenance,
    /// Per N, each figure's median over the runs.
    medians: &'a [Figures],
    /// Every run's figures.
    runs: &'a [Figures],
}

/// `target/fanout.json`: the medians and every run, with their provenance.
pub fn write_json(
    provenance: &Provenance,
    medians: &[Figures],
    runs: &[Figures],
) -> anyhow::Result<PathBuf> {
    // Benches are built with CARGO_TARGET_TMPDIR = <target>/tmp.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_dir().join("target"));
    let path = target.join("fanout.json");
    let json = serde_json::to_string_pretty(&Document {
        provenance,
        medians,
        runs,
    })?;
    std::fs::write(&path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

const LATEST_BEGIN: &str = "<!-- fanout: latest run, written by the benchmark -->";
const LATEST_END: &str = "<!-- fanout: end of latest run -->";

/// Replaces the latest-run section of docs/performance.md with these figures.
pub fn write_docs(provenance: &Provenance, medians: &[Figures]) -> anyhow::Result<PathBuf> {
    let path = repo_dir().join("docs/performance.md");
    let doc =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (Some(begin), Some(end)) = (doc.find(LATEST_BEGIN), doc.find(LATEST_END)) else {
        anyhow::bail!("{} has no latest-run markers", path.display());
    };
    let section = format!(
        "{LATEST_BEGIN}\n{} at {}, on {}; `{}`; each figure the median of {} run(s), {} changes \
         each, {} s of steady state.\n\n{}{LATEST_END}",
        provenance.date,
        provenance.commit,
        provenance.machine,
        provenance.command,
        provenance.runs_per_n,
        provenance.changes,
        provenance.steady_seconds,
        tables(medians),
    );
    let updated = format!(
        "{}{section}{}",
        &doc[..begin],
        &doc[end + LATEST_END.len()..]
    );
    std::fs::write(&path, updated).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
