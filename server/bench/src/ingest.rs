//! `traum-bench ingest`: files per hour through `traum upload` with the
//! default pipeline, for each worker count, with CPU utilisation and the time
//! of each pipeline stage read from the server's own metrics.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::SplitMix;

pub struct IngestSetup {
    pub model_dir: PathBuf,
    pub files: usize,
    pub workers: Vec<usize>,
    /// Where the generated corpus is kept between runs.
    pub out: PathBuf,
    /// Directory holding the release `traum-server` and `traum` binaries.
    pub bin_dir: PathBuf,
    /// Replica counts to run, each replica with `workers` workers.
    pub replicas: Vec<usize>,
    /// A PostgreSQL server (any database on it) for runs on PostgreSQL: each
    /// run gets a fresh database there. Without it, runs use SQLite and one
    /// replica.
    pub database_url: Option<String>,
    /// `--precision` of the servers.
    pub precision: traum_clap::Precision,
}

/// Lengths of a sample library: mostly loops, some stems, a few full tracks.
fn length_seconds(i: usize) -> f64 {
    match i % 25 {
        0..=14 => 10.0,
        15..=19 => 30.0,
        20..=22 => 120.0,
        _ => 300.0,
    }
}

pub fn ingest_bench(setup: &IngestSetup) -> anyhow::Result<()> {
    let server_bin = setup.bin_dir.join("traum-server");
    let cli_bin = setup.bin_dir.join("traum");
    for bin in [&server_bin, &cli_bin] {
        if !bin.is_file() {
            bail!(
                "{} is missing: build it with `cargo build --release -p traum-server -p traum-client`",
                bin.display()
            );
        }
    }
    let corpus = corpus(&setup.out, setup.files)?;
    let audio_seconds: f64 = (0..setup.files).map(length_seconds).sum();
    println!(
        "{}; {} files ({:.0} s of audio: {}), checkpoint {}",
        crate::text::machine(),
        setup.files,
        audio_seconds,
        corpus.1,
        setup.model_dir.display()
    );
    if setup.database_url.is_none() && setup.replicas.iter().any(|&r| r > 1) {
        bail!("replicas share a PostgreSQL database: pass --database-url postgres://...");
    }
    println!(
        "database: {}; blobs: one directory shared by the replicas; uploads: one `traum upload` per replica \
         on its round-robin share of the files, all at once",
        if setup.database_url.is_some() {
            "PostgreSQL, fresh per run"
        } else {
            "SQLite"
        }
    );
    println!(
        "{:>8} {:>7} {:>8} {:>10} {:>8} {:>9} {:>7}   stage seconds summed over jobs (share of their total)",
        "replicas", "workers", "wall s", "files/h", "CPU %", "succeeded", "failed"
    );
    let files = corpus_files(&corpus.0)?;
    let ticks = clock_ticks()?;
    for &replicas in &setup.replicas {
        for &workers in &setup.workers {
            let run = Run {
                setup,
                server_bin: &server_bin,
                cli_bin: &cli_bin,
                files: &files,
                replicas: replicas.max(1),
                workers,
                ticks,
            };
            run.measure()?;
        }
    }
    Ok(())
}

/// The corpus's files, sorted, so each replica's share is the same every run.
fn corpus_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        // Not the `.complete` marker.
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

struct Run<'a> {
    setup: &'a IngestSetup,
    server_bin: &'a Path,
    cli_bin: &'a Path,
    files: &'a [PathBuf],
    replicas: usize,
    workers: usize,
    ticks: f64,
}

impl Run<'_> {
    fn measure(&self) -> anyhow::Result<()> {
        let scratch = tempfile::tempdir()?;
        let database = match &self.setup.database_url {
            Some(base) => Some(FreshDatabase::create(base)?),
            None => None,
        };
        let blobs = scratch.path().join("blobs");
        let mut servers = Vec::with_capacity(self.replicas);
        for index in 0..self.replicas {
            let data = scratch.path().join(format!("data-{index}"));
            let (grpc, metrics) = (free_port()?, free_port()?);
            let mut command = Command::new(self.server_bin);
            command
                .arg("--data-dir")
                .arg(&data)
                .arg("--model-dir")
                .arg(&self.setup.model_dir)
                .args(["--workers", &self.workers.to_string()])
                .args(["--listen", &format!("127.0.0.1:{grpc}")])
                .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
                .args(["--web-listen", "off", "--log", "warn"])
                .args(["--replica-id", &format!("bench-{index}")])
                .args(["--precision", self.setup.precision.as_str()])
                .arg("--blob-store")
                .arg(format!("file://{}", blobs.display()))
                .stdout(Stdio::null());
            if let Some(database) = &database {
                command.args(["--database-url", &database.url]);
            }
            let child = command
                .spawn()
                .with_context(|| format!("cannot start {}", self.server_bin.display()))?;
            servers.push((KillOnDrop(child), format!("http://127.0.0.1:{grpc}"), metrics));
        }
        for (_, address, _) in &servers {
            wait_until_ready(self.cli_bin, address)?;
        }
        let cpu_before = servers
            .iter()
            .map(|(server, _, _)| cpu_seconds(server.0.id(), self.ticks))
            .sum::<anyhow::Result<f64>>()?;
        let started = Instant::now();
        let uploads: Vec<Child> = servers
            .iter()
            .enumerate()
            .map(|(index, (_, address, _))| {
                let share = self.files.iter().skip(index).step_by(self.replicas);
                Command::new(self.cli_bin)
                    .args(["--addr", address, "--json", "upload"])
                    .args(share)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .context("cannot run traum upload")
            })
            .collect::<anyhow::Result<_>>()?;
        let mut outcomes: Vec<serde_json::Value> = Vec::new();
        let mut problems = Vec::new();
        for upload in uploads {
            let output = upload.wait_with_output().context("traum upload")?;
            let report: Vec<serde_json::Value> =
                serde_json::from_slice(&output.stdout).context("traum upload --json printed no report")?;
            outcomes.extend(report);
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                problems.push(format!("  (traum upload exited with {}: {last})", output.status));
            }
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = servers
            .iter()
            .map(|(server, _, _)| cpu_seconds(server.0.id(), self.ticks))
            .sum::<anyhow::Result<f64>>()?
            - cpu_before;
        // Duplicates are not failures; anything else short of a finished job is.
        let failures: Vec<&serde_json::Value> = outcomes
            .iter()
            .filter(|o| {
                !o["error"].is_null() || (o["duplicate"] != true && o["state"] != "JOB_STATE_SUCCEEDED")
            })
            .collect();
        let failed = failures.len();
        for failure in &failures {
            problems.push(format!("  (failed: {failure})"));
        }
        let mut stages: Vec<(String, f64)> = Vec::new();
        let (mut succeeded, mut fingerprint) = (0, 0.0);
        for (_, _, metrics) in &servers {
            let page = scrape(*metrics)?;
            for (stage, seconds) in stage_seconds(&page)? {
                match stages.iter_mut().find(|(name, _)| *name == stage) {
                    Some((_, total)) => *total += seconds,
                    None => stages.push((stage, seconds)),
                }
            }
            succeeded += jobs_succeeded(&page);
            fingerprint += metric_sum(&page, "traum_fingerprint_seconds_sum").unwrap_or(0.0);
        }
        let total: f64 = stages.iter().map(|(_, s)| s).sum();
        let mut breakdown: Vec<String> = stages
            .iter()
            .map(|(stage, s)| format!("{stage} {s:.1} ({:.0}%)", 100.0 * s / total.max(1e-9)))
            .collect();
        // Part of `analyse`, shown apart: what near-duplicate detection costs.
        breakdown.push(format!(
            "of which fingerprint {fingerprint:.1} ({:.1}%)",
            100.0 * fingerprint / total.max(1e-9)
        ));
        println!(
            "{:>8} {:>7} {wall:>8.1} {:>10.0} {:>8.0} {succeeded:>9} {failed:>7}   {}{}",
            self.replicas,
            self.workers,
            self.files.len() as f64 * 3600.0 / wall,
            100.0 * cpu / wall,
            breakdown.join(", "),
            problems.join("")
        );
        drop(servers);
        if let Some(database) = database {
            database.drop_database()?;
        }
        Ok(())
    }
}

/// A database of its own for one run on a PostgreSQL server, dropped after.
struct FreshDatabase {
    base: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    fn create(base: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            base.starts_with("postgres"),
            "--database-url must be postgres://..."
        );
        let name = format!(
            "traum_bench_{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis()
        );
        admin(base, &format!("CREATE DATABASE {name}"))?;
        let (without_query, query) = base
            .split_once('?')
            .map_or((base, None), |(url, q)| (url, Some(q)));
        let host_end = without_query
            .find("://")
            .and_then(|scheme| {
                without_query[scheme + 3..]
                    .find('/')
                    .map(|slash| scheme + 3 + slash)
            })
            .unwrap_or(without_query.len());
        let url = format!(
            "{}/{name}{}",
            &without_query[..host_end],
            query.map(|q| format!("?{q}")).unwrap_or_default()
        );
        Ok(Self {
            base: base.to_owned(),
            name,
            url,
        })
    }

    fn drop_database(self) -> anyhow::Result<()> {
        admin(
            &self.base,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
    }
}

/// Runs one statement on `url` outside any transaction.
fn admin(url: &str, sql: &str) -> anyhow::Result<()> {
    use sea_orm::ConnectionTrait;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = sea_orm::Database::connect(url).await?;
        db.execute_unprepared(sql).await?;
        db.close().await?;
        Ok(())
    })
}

/// The corpus directory (rendered once) and a description of its formats.
fn corpus(out: &Path, files: usize) -> anyhow::Result<(PathBuf, String)> {
    let dir = out.join(format!("ingest-{files}"));
    let ffmpeg = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    let formats = if ffmpeg {
        "WAV, FLAC and MP3 in turn"
    } else {
        "WAV (no ffmpeg for FLAC and MP3)"
    };
    let done = dir.join(".complete");
    if done.is_file() {
        return Ok((dir, formats.to_owned()));
    }
    std::fs::create_dir_all(&dir)?;
    for i in 0..files {
        let wav = dir.join(format!("take{i:03}.wav"));
        write_wav(&wav, &render(i), 44_100)?;
        let encoded = match (ffmpeg, i % 3) {
            (true, 1) => Some(("flac", vec!["-c:a", "flac"])),
            (true, 2) => Some(("mp3", vec!["-c:a", "libmp3lame", "-b:a", "192k"])),
            _ => None,
        };
        if let Some((extension, codec)) = encoded {
            let target = wav.with_extension(extension);
            let status = Command::new("ffmpeg")
                .args(["-loglevel", "error", "-y", "-i"])
                .arg(&wav)
                .args(codec)
                .arg(&target)
                .status()?;
            if !status.success() {
                bail!("ffmpeg could not encode {}", target.display());
            }
            std::fs::remove_file(&wav)?;
        }
    }
    std::fs::write(done, b"")?;
    Ok((dir, formats.to_owned()))
}

/// A stereo 44.1 kHz take with its own tempo, chord and drum pattern, so no
/// two files share their bytes or their sound.
fn render(i: usize) -> Vec<[f32; 2]> {
    let rate = 44_100.0;
    let seconds = length_seconds(i);
    let mut rng = SplitMix(0x1a6e57 + i as u64);
    let bpm = 80.0 + (rng.next() % 80) as f64;
    let root = 55.0 * 2f64.powf((rng.next() % 12) as f64 / 12.0);
    let chord = [1.0, 1.2599, 1.4983].map(|r| root * 4.0 * r);
    let beat = 60.0 / bpm;
    let n = (seconds * rate) as usize;
    let mut noise = SplitMix(i as u64 * 7 + 3);
    (0..n)
        .map(|s| {
            let t = s as f64 / rate;
            let in_beat = t % beat;
            let kick = (-in_beat * 30.0).exp() * (2.0 * std::f64::consts::PI * 55.0 * in_beat).sin();
            let in_half = t % (beat / 2.0);
            let hat = (-in_half * 120.0).exp() * (noise.gaussian() as f64) * 0.2;
            let pad: f64 = chord
                .iter()
                .map(|f| (2.0 * std::f64::consts::PI * f * t).sin())
                .sum::<f64>()
                * (0.6 + 0.4 * (t * 0.3).sin())
                / 6.0;
            let left = 0.5 * kick + hat + pad;
            let right = 0.5 * kick + 0.8 * hat + pad * 0.9;
            [(left * 0.6) as f32, (right * 0.6) as f32]
        })
        .collect()
}

fn write_wav(path: &Path, frames: &[[f32; 2]], rate: u32) -> anyhow::Result<()> {
    let data_len = u32::try_from(frames.len() * 4).context("take too long for WAV")?;
    let mut bytes = Vec::with_capacity(44 + data_len as usize);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 4).to_le_bytes());
    bytes.extend_from_slice(&4u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for frame in frames {
        for sample in frame {
            bytes.extend_from_slice(&((sample.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
        }
    }
    std::fs::write(path, bytes)?;
    Ok(())
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until the server reports its search service (model loaded) serving.
fn wait_until_ready(cli: &Path, address: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let status = Command::new(cli)
            .args(["--addr", address, "health", "--service", "traum.v1.SearchService"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the server at {address} did not become ready in 300 s");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn clock_ticks() -> anyhow::Result<f64> {
    let output = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().parse()?)
}

/// User + system CPU seconds of a process, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32, ticks: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) / ticks)
}

/// The server's `/metrics` page.
fn scrape(port: u16) -> anyhow::Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    Ok(body)
}

/// `traum_jobs_finished_total{state="succeeded"}`: jobs the server finished.
fn jobs_succeeded(body: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix("traum_jobs_finished_total{state=\"succeeded\"}"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// The value of an unlabelled metric line, e.g. a histogram's `_sum`.
fn metric_sum(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `traum_job_stage_duration_seconds_sum` per stage.
fn stage_seconds(body: &str) -> anyhow::Result<Vec<(String, f64)>> {
    let mut stages = Vec::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("traum_job_stage_duration_seconds_sum{stage=\"") else {
            continue;
        };
        let Some((stage, value)) = rest.split_once("\"}") else {
            continue;
        };
        stages.push((stage.to_owned(), value.trim().parse()?));
    }
    Ok(stages)
}
