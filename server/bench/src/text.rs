//! Text queries: the RoBERTa-base text tower one query at a time vs batched,
//! and the server's engine under a steady load of new queries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use traum_clap::{ClapModel, cpu_device};
use traum_server::embed::{Engine, ModelSettings, TextSettings};

use crate::{SplitMix, percentile_ms};

/// RoBERTa-base, as in every LAION CLAP checkpoint.
const HIDDEN: usize = 768;
const LAYERS: usize = 12;
const HEADS: usize = 12;
const INTERMEDIATE: usize = 3072;
const POSITIONS: usize = 514;
const PROJECTION: usize = 512;

/// A checkpoint with the tiny fixture's audio tower and tokenizer and a
/// full-size random-weight RoBERTa-base text tower (HF's initialisation:
/// normal(0, 0.02), zero biases, unit layer norms), written once into `out`.
///
/// The fixture tokenizer's 400-token vocabulary spells most words out in
/// pieces, which made queries about 2.5 times as long as RoBERTa's BPE makes
/// them. The benchmark's words and the numbers 0-999 are added to it as whole
/// words, so a query is as many tokens as under RoBERTa's own tokenizer, where
/// these common words and short numbers are single tokens ("warm analog pad
/// take 3 141" → 8 with `<s>` and `</s>`). The word-embedding table grows to
/// match; it is gathered on the host, so its size does not change the compute.
pub fn fullsize_text_checkpoint(out: &Path) -> anyhow::Result<PathBuf> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/clap-model/htsat-tiny");
    let dir = out.join("roberta-base-text-words");
    if dir.join("model.safetensors").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    for file in ["tokenizer_config.json", "preprocessor_config.json"] {
        std::fs::copy(fixture.join(file), dir.join(file))?;
    }
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture.join("config.json"))?)?;
    let fixture_vocab = config["text_config"]["vocab_size"]
        .as_u64()
        .context("fixture config has no text vocab_size")? as usize;
    let mut tokenizer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture.join("tokenizer.json"))?)?;
    let added = tokenizer["added_tokens"]
        .as_array_mut()
        .context("fixture tokenizer has no added_tokens")?;
    let words = WORDS
        .iter()
        .map(|w| (*w).to_owned())
        .chain(std::iter::once("take".to_owned()))
        .chain((0..1000).map(|n| n.to_string()));
    let mut vocab = fixture_vocab;
    for word in words {
        // `lstrip` takes the space before the word into the token, as
        // RoBERTa's `Ġword` tokens do.
        added.push(serde_json::json!({
            "id": vocab, "content": word, "single_word": true, "lstrip": true,
            "rstrip": false, "normalized": false, "special": false
        }));
        vocab += 1;
    }
    std::fs::write(dir.join("tokenizer.json"), serde_json::to_vec(&tokenizer)?)?;
    config["text_config"]["vocab_size"] = vocab.into();
    let audio_width = config["audio_config"]["hidden_size"]
        .as_u64()
        .context("fixture config has no audio hidden_size")? as usize;
    let text = &mut config["text_config"];
    text["hidden_size"] = HIDDEN.into();
    text["num_hidden_layers"] = LAYERS.into();
    text["num_attention_heads"] = HEADS.into();
    text["intermediate_size"] = INTERMEDIATE.into();
    text["max_position_embeddings"] = POSITIONS.into();
    text["projection_dim"] = PROJECTION.into();
    config["audio_config"]["projection_dim"] = PROJECTION.into();
    config["projection_dim"] = PROJECTION.into();
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;

    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        (
            "text_model.embeddings.word_embeddings.weight".into(),
            vec![vocab, HIDDEN],
        ),
        (
            "text_model.embeddings.position_embeddings.weight".into(),
            vec![POSITIONS, HIDDEN],
        ),
        (
            "text_model.embeddings.token_type_embeddings.weight".into(),
            vec![1, HIDDEN],
        ),
        ("text_model.embeddings.LayerNorm.weight".into(), vec![HIDDEN]),
        ("text_model.embeddings.LayerNorm.bias".into(), vec![HIDDEN]),
    ];
    let linear = |shapes: &mut Vec<(String, Vec<usize>)>, name: String, d_in: usize, d_out: usize| {
        shapes.push((format!("{name}.weight"), vec![d_out, d_in]));
        shapes.push((format!("{name}.bias"), vec![d_out]));
    };
    let norm = |shapes: &mut Vec<(String, Vec<usize>)>, name: String| {
        shapes.push((format!("{name}.weight"), vec![HIDDEN]));
        shapes.push((format!("{name}.bias"), vec![HIDDEN]));
    };
    for i in 0..LAYERS {
        let p = format!("text_model.encoder.layer.{i}");
        for part in ["query", "key", "value"] {
            linear(&mut shapes, format!("{p}.attention.self.{part}"), HIDDEN, HIDDEN);
        }
        linear(&mut shapes, format!("{p}.attention.output.dense"), HIDDEN, HIDDEN);
        norm(&mut shapes, format!("{p}.attention.output.LayerNorm"));
        linear(
            &mut shapes,
            format!("{p}.intermediate.dense"),
            HIDDEN,
            INTERMEDIATE,
        );
        linear(&mut shapes, format!("{p}.output.dense"), INTERMEDIATE, HIDDEN);
        norm(&mut shapes, format!("{p}.output.LayerNorm"));
    }
    linear(&mut shapes, "text_model.pooler.dense".into(), HIDDEN, HIDDEN);
    linear(&mut shapes, "text_projection.linear1".into(), HIDDEN, PROJECTION);
    linear(
        &mut shapes,
        "text_projection.linear2".into(),
        PROJECTION,
        PROJECTION,
    );
    linear(
        &mut shapes,
        "audio_projection.linear1".into(),
        audio_width,
        PROJECTION,
    );
    linear(
        &mut shapes,
        "audio_projection.linear2".into(),
        PROJECTION,
        PROJECTION,
    );

    let mut rng = SplitMix(7);
    let mut tensors: HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> = HashMap::new();
    for (name, shape) in &shapes {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = if name.contains("LayerNorm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            (0..n).map(|_| 0.02 * rng.gaussian()).collect()
        };
        tensors.insert(
            name.clone(),
            (
                Dtype::F32,
                shape.clone(),
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        );
    }
    let fixture_bytes = std::fs::read(fixture.join("model.safetensors"))?;
    let fixture_weights = SafeTensors::deserialize(&fixture_bytes)?;
    for (name, view) in fixture_weights.tensors() {
        let replaced = ["text_model.", "text_projection.", "audio_projection."]
            .iter()
            .any(|prefix| name.starts_with(prefix));
        if !replaced {
            tensors.insert(name, (view.dtype(), view.shape().to_vec(), view.data().to_vec()));
        }
    }
    let views = tensors
        .iter()
        .map(|(name, (dtype, shape, data))| Ok((name.clone(), TensorView::new(*dtype, shape.clone(), data)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bytes = safetensors::tensor::serialize(views, None)?;
    std::fs::write(dir.join("model.safetensors"), bytes)?;
    Ok(dir)
}

const WORDS: [&str; 32] = [
    "warm", "analog", "pad", "kick", "snare", "bright", "dark", "vinyl", "crackle", "bass", "deep", "house",
    "rain", "dog", "barking", "piano", "chord", "loop", "fast", "slow", "reverb", "choir", "glitch", "drum",
    "break", "techno", "airy", "flute", "metallic", "hit", "noise", "riser",
];

/// Search-like queries of two to five words, every one different.
pub struct Queries {
    rng: SplitMix,
    issued: u64,
}

impl Queries {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix(seed),
            issued: 0,
        }
    }

    pub fn next_new(&mut self) -> String {
        let words = 2 + (self.rng.next() % 4) as usize;
        let mut text: Vec<&str> = (0..words)
            .map(|_| WORDS[(self.rng.next() % WORDS.len() as u64) as usize])
            .collect();
        self.issued += 1;
        // Two numbers below 1000, each one token (see `fullsize_text_checkpoint`).
        let tag = format!("take {} {}", self.issued / 1000, self.issued % 1000);
        text.push(&tag);
        text.join(" ")
    }
}

/// Min, median and max of a non-empty list.
pub(crate) fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[0], values[values.len() / 2], values[values.len() - 1])
}

/// The CPU model, the flags that matter to inference, and the CPU count.
pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags"))
        .map(|l| {
            l.split_whitespace()
                .filter(|f| ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"].contains(f))
                .collect()
        })
        .unwrap_or_default();
    format!("{model} ({}), {} CPUs", flags.join(" "), crate::num_cpus())
}

/// New texts per second through the text tower: one at a time, then in
/// batches of each size; a warm-up first, then `reps` repetitions of `n`
/// texts each, new texts every time.
pub fn batch_bench(
    out: &Path,
    threads: usize,
    batches: &[usize],
    n: usize,
    reps: usize,
) -> anyhow::Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("cannot size the rayon pool")?;
    let dir = fullsize_text_checkpoint(out)?;
    let model = ClapModel::load(&dir, &cpu_device()).context("cannot load the checkpoint")?;
    let mut queries = Queries::new(1);
    let sample: Vec<String> = (0..200).map(|_| queries.next_new()).collect();
    let tokens: Vec<usize> = sample
        .iter()
        .map(|t| model.tokenizer().encode(t).map(|ids| ids.len()))
        .collect::<Result<_, _>>()?;
    let (tmin, tmed, tmax) = spread(tokens.iter().map(|&t| t as f64).collect());
    println!(
        "{}; {threads} threads; RoBERTa-base text tower (random weights) from {}",
        machine(),
        dir.display()
    );
    println!(
        "queries like {:?}: {tmin}/{tmed}/{tmax} tokens (min/median/max)",
        sample[0]
    );
    println!("{n} new texts per repetition, {reps} repetitions after a warm-up; texts/s min / median / max");
    let mut run = |batch: usize| -> anyhow::Result<f64> {
        let texts: Vec<String> = (0..n).map(|_| queries.next_new()).collect();
        let started = Instant::now();
        if batch == 0 {
            for text in &texts {
                model.embed_text(text)?;
            }
        } else {
            for chunk in texts.chunks(batch) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                model.embed_texts(&refs)?;
            }
        }
        Ok(n as f64 / started.elapsed().as_secs_f64())
    };
    let sizes: Vec<usize> = std::iter::once(0).chain(batches.iter().copied()).collect();
    for &batch in &sizes {
        run(batch)?;
    }
    // Interleaved, so drift over the run hits every size alike.
    let mut rates: HashMap<usize, Vec<f64>> = HashMap::new();
    for _ in 0..reps {
        for &batch in &sizes {
            rates.entry(batch).or_default().push(run(batch)?);
        }
    }
    let (_, unbatched, _) = spread(rates[&0].clone());
    for &batch in &sizes {
        let (min, median, max) = spread(rates[&batch].clone());
        let label = if batch == 0 {
            "one at a time (embed_text)".to_owned()
        } else {
            format!("batches of {batch} (embed_texts)")
        };
        println!(
            "{label:<30} {min:>7.1} {median:>7.1} {max:>7.1}   ×{:.2}",
            median / unbatched
        );
    }
    Ok(())
}

/// Offered load of new texts per second (plus cached repeats) against the
/// server's engine and, beside it, `transformers` in PyTorch, for each rate
/// and each batching setting.
pub struct LoadSetup {
    pub out: PathBuf,
    pub threads: usize,
    pub rates: Vec<f64>,
    pub seconds: f64,
    /// Cached repeats per new text.
    pub repeats: f64,
    /// `batch_size:wait_ms` settings to compare.
    pub settings: Vec<(usize, u64)>,
    /// How long a caller waits before giving up.
    pub deadline: Duration,
    /// Python interpreter for the PyTorch side, if it runs.
    pub python: Option<String>,
    /// What Traum's text tower computes in.
    pub precision: traum_clap::Precision,
}

/// What one side did under one offered load.
struct LoadRun {
    /// Latencies of the new texts answered before their deadline.
    new: Vec<Duration>,
    repeated: Vec<Duration>,
    /// New texts not answered before their deadline.
    timed_out: usize,
    /// Seconds from the first request to the last answer or deadline.
    elapsed: f64,
    passes: u64,
}

impl LoadRun {
    /// The `q` quantile of all new texts' latencies in ms, a timeout counting
    /// as longer than any answer; `None` when it falls on a timeout.
    fn new_quantile(&self, q: f64) -> Option<f64> {
        let total = self.new.len() + self.timed_out;
        let index = ((total as f64 * q) as usize).min(total.saturating_sub(1));
        self.new.get(index).map(|d| d.as_secs_f64() * 1000.0)
    }

    fn row(&self, side: &str, setting: &str, rate: f64, deadline: Duration) -> String {
        let quantile = |q: f64| {
            self.new_quantile(q)
                .map_or_else(|| format!(">{}", deadline.as_millis()), |ms| format!("{ms:.1}"))
        };
        format!(
            "{side:<8} {setting:<10} {rate:>8.0} {:>10.1} {:>9} {:>9} {:>9.1} {:>8} {:>8}",
            self.new.len() as f64 / self.elapsed,
            quantile(0.5),
            quantile(0.99),
            percentile_ms(&self.repeated, 0.99),
            self.timed_out,
            self.passes,
        )
    }
}

/// `traum-bench text-load`: for each batching setting, Traum's engine and
/// (if Python is given) the PyTorch peer with the same policy are loaded and
/// warmed up; then each rate runs on Traum, then on PyTorch, rate after rate,
/// so drift of the machine hits both sides.
pub fn load_bench(setup: &LoadSetup) -> anyhow::Result<()> {
    let dir = fullsize_text_checkpoint(&setup.out)?;
    println!(
        "{}; {} inference threads; RoBERTa-base text tower (random weights), Traum in {} ({})",
        machine(),
        setup.threads,
        setup.precision,
        if setup.precision == traum_clap::Precision::Bf16 {
            traum_clap::Bf16Kernel::best().name()
        } else {
            "f32 GEMM"
        }
    );
    println!(
        "each rate for {} s: new texts/s offered at even intervals, plus {} cached repeats per new text; \
         callers give up after {} ms",
        setup.seconds,
        setup.repeats,
        setup.deadline.as_millis()
    );
    println!(
        "{:<8} {:<10} {:>8} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "side", "batch:wait", "offered", "new done/s", "p50 ms", "p99 ms", "rep p99", "timeouts", "passes"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for &(batch_size, wait_ms) in &setup.settings {
        let setting = format!("{batch_size}:{wait_ms}ms");
        let settings = ModelSettings {
            source: None,
            hub: Default::default(),
            batch_size: 2,
            threads: setup.threads,
            precision: setup.precision,
            text: TextSettings {
                batch_size,
                batch_wait: Duration::from_millis(wait_ms),
                cache_entries: 1 << 20,
                cache_dir: None,
            },
        };
        let engine = Arc::new(Engine::start(&dir, &settings)?);
        let mut peer = match &setup.python {
            Some(python) => Some(Peer::start(python, &dir, setup.threads, batch_size, wait_ms)?),
            None => None,
        };
        let mut queries = Queries::new(1000 + batch_size as u64 * 100 + wait_ms);
        // Warm-up, and texts for the cached repeats.
        let known: Vec<String> = (0..20).map(|_| queries.next_new()).collect();
        for text in &known {
            runtime.block_on(engine.embed_text(text))?;
        }
        if let Some(peer) = &mut peer {
            peer.call(&serde_json::json!({ "warm": known }))?;
        }
        for &rate in &setup.rates {
            let total = (rate * setup.seconds).round() as usize;
            let new_texts: Vec<String> = (0..total).map(|_| queries.next_new()).collect();
            let passes_before = engine.text_encoder_passes();
            let mut ours = runtime.block_on(offer(&engine, &new_texts, &known, rate, setup));
            ours.passes = engine.text_encoder_passes() - passes_before;
            println!("{}", ours.row("traum", &setting, rate, setup.deadline));
            if let Some(peer) = &mut peer {
                // The same number of new texts, none of them seen before by either side.
                let texts: Vec<String> = (0..total).map(|_| queries.next_new()).collect();
                let theirs = peer.run(&texts, &known, rate, setup)?;
                println!("{}", theirs.row("pytorch", &setting, rate, setup.deadline));
            }
        }
    }
    Ok(())
}

/// Latencies of new and repeated queries through the engine.
async fn offer(
    engine: &Arc<Engine>,
    new_texts: &[String],
    known: &[String],
    rate: f64,
    setup: &LoadSetup,
) -> LoadRun {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut owed = 0.0;
    for (i, text) in new_texts.iter().enumerate() {
        tokio::time::sleep_until(started + interval * i as u32).await;
        let mut send = |text: String, new: bool| {
            let engine = engine.clone();
            let deadline = setup.deadline;
            tasks.spawn(async move {
                let at = Instant::now();
                // Dropping the call at its deadline is what a gRPC client's
                // deadline does to the server's handler.
                let answered = tokio::time::timeout(deadline, engine.embed_text(&text)).await;
                (new, matches!(answered, Ok(Ok(_))), at.elapsed())
            });
        };
        send(text.clone(), true);
        owed += setup.repeats;
        while owed >= 1.0 {
            owed -= 1.0;
            send(known[i % known.len()].clone(), false);
        }
    }
    let (mut new, mut repeated, mut timed_out) = (Vec::new(), Vec::new(), 0);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, false, _)) | Err(_) => timed_out += 1,
            Ok((true, true, latency)) => new.push(latency),
            Ok((false, true, latency)) => repeated.push(latency),
        }
    }
    new.sort();
    repeated.sort();
    LoadRun {
        new,
        repeated,
        timed_out,
        elapsed: started.elapsed().as_secs_f64(),
        passes: 0,
    }
}

/// `text_load_peer.py`: `transformers` in PyTorch behind a batching thread
/// with the same policy as the engine, driven over stdin/stdout one JSON
/// line per command.
struct Peer {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Peer {
    fn start(python: &str, dir: &Path, threads: usize, batch: usize, wait_ms: u64) -> anyhow::Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("text_load_peer.py");
        let mut child = std::process::Command::new(python)
            .arg(&script)
            .arg(dir)
            .args([threads.to_string(), batch.to_string(), wait_ms.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {python} {}", script.display()))?;
        let input = child.stdin.take().context("no stdin")?;
        let output =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().context("no stdout")?));
        Ok(Self { child, input, output })
    }

    fn call(&mut self, command: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        use std::io::Write as _;
        writeln!(self.input, "{command}")?;
        self.input.flush()?;
        let line = self
            .output
            .next()
            .context("the PyTorch peer stopped (is torch installed?)")??;
        Ok(serde_json::from_str(&line)?)
    }

    fn run(
        &mut self,
        new: &[String],
        known: &[String],
        rate: f64,
        setup: &LoadSetup,
    ) -> anyhow::Result<LoadRun> {
        let reply = self.call(&serde_json::json!({
            "new": new, "known": known, "rate": rate, "repeats": setup.repeats,
            "deadline_ms": setup.deadline.as_millis() as u64,
        }))?;
        let durations = |key: &str| -> anyhow::Result<Vec<Duration>> {
            let mut values: Vec<Duration> = reply[key]
                .as_array()
                .with_context(|| format!("peer reply has no {key}"))?
                .iter()
                .filter_map(serde_json::Value::as_f64)
                .map(|ms| Duration::from_secs_f64(ms / 1000.0))
                .collect();
            values.sort();
            Ok(values)
        };
        Ok(LoadRun {
            new: durations("new_ms")?,
            repeated: durations("repeat_ms")?,
            timed_out: reply["timed_out"].as_u64().unwrap_or(0) as usize,
            elapsed: reply["elapsed"].as_f64().unwrap_or(f64::NAN),
            passes: reply["passes"].as_u64().unwrap_or(0),
        })
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
