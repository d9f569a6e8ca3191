//! `traum waveform`: a file's min/max peaks.

use clap::Args;
use serde::Serialize;
use traum_client::TraumClient;
use traum_client::v1::{GetWaveformRequest, WaveformLevel};

use super::output::{minutes_seconds, print_json, rpc};
use super::{Globals, Outcome};

/// Columns of the overview drawn under the summary.
const SPARKLINE_COLUMNS: usize = 64;

#[derive(Debug, Args)]
pub struct WaveformArgs {
    /// The file whose waveform to show.
    file_id: String,
}

#[derive(Serialize)]
struct LevelJson {
    samples_per_pair: u32,
    pair_count: u32,
    /// Seconds of audio each pair covers.
    seconds_per_pair: f64,
    /// `[min, max]` per pair, signed, where ±127 is full scale.
    peaks: Vec<[i8; 2]>,
}

#[derive(Serialize)]
struct WaveformJson {
    file_id: String,
    sample_rate_hz: u32,
    duration_seconds: f64,
    overview: Option<LevelJson>,
    detail: Option<LevelJson>,
}

/// One level's pairs, checked against its own count.
fn pairs(level: &WaveformLevel) -> anyhow::Result<Vec<[i8; 2]>> {
    let expected = usize::try_from(level.pair_count)?.saturating_mul(2);
    if level.peaks.len() != expected {
        return Err(traum_client::ClientError::Protocol(format!(
            "a waveform level of {} pairs carries {} bytes, not {expected}",
            level.pair_count,
            level.peaks.len()
        ))
        .into());
    }
    Ok(level
        .peaks
        .chunks_exact(2)
        .map(|pair| [pair[0] as i8, pair[1] as i8])
        .collect())
}

fn level_json(level: &WaveformLevel, sample_rate_hz: u32) -> anyhow::Result<LevelJson> {
    Ok(LevelJson {
        samples_per_pair: level.samples_per_pair,
        pair_count: level.pair_count,
        seconds_per_pair: seconds_per_pair(level, sample_rate_hz),
        peaks: pairs(level)?,
    })
}

fn seconds_per_pair(level: &WaveformLevel, sample_rate_hz: u32) -> f64 {
    if sample_rate_hz == 0 {
        return 0.0;
    }
    f64::from(level.samples_per_pair) / f64::from(sample_rate_hz)
}

/// The largest magnitude of a level, 0 to 1 of full scale.
fn peak(pairs: &[[i8; 2]]) -> f64 {
    let largest = pairs
        .iter()
        .flatten()
        .map(|value| value.unsigned_abs())
        .max()
        .unwrap_or(0);
    (f64::from(largest) / 127.0).min(1.0)
}

/// `pairs` squeezed into `columns` block characters, each as tall as the
/// loudest pair it covers.
fn sparkline(pairs: &[[i8; 2]], columns: usize) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if pairs.is_empty() || columns == 0 {
        return String::new();
    }
    let columns = columns.min(pairs.len());
    (0..columns)
        .map(|column| {
            let start = column * pairs.len() / columns;
            let end = ((column + 1) * pairs.len() / columns).max(start + 1);
            let height = peak(&pairs[start..end]);
            let index = (height * (BLOCKS.len() - 1) as f64).round() as usize;
            BLOCKS[index.min(BLOCKS.len() - 1)]
        })
        .collect()
}

fn describe(name: &str, level: &WaveformLevel, sample_rate_hz: u32) -> anyhow::Result<String> {
    let pairs = pairs(level)?;
    let peak = peak(&pairs);
    let loudest = if peak > 0.0 {
        format!("peak {peak:.2} ({:.1} dBFS)", 20.0 * peak.log10())
    } else {
        "silent".to_owned()
    };
    Ok(format!(
        "{name}: {} pairs of {} samples ({:.2} ms each), {loudest}",
        level.pair_count,
        level.samples_per_pair,
        seconds_per_pair(level, sample_rate_hz) * 1000.0
    ))
}

pub async fn waveform(client: &TraumClient, globals: Globals, args: WaveformArgs) -> anyhow::Result<Outcome> {
    let waveform = rpc(client
        .audio()
        .get_waveform(GetWaveformRequest {
            file_id: args.file_id,
        })
        .await)?;
    let rate = waveform.sample_rate_hz;
    if globals.json {
        print_json(&WaveformJson {
            file_id: waveform.file_id.clone(),
            sample_rate_hz: rate,
            duration_seconds: waveform.duration_seconds,
            overview: waveform
                .overview
                .as_ref()
                .map(|level| level_json(level, rate))
                .transpose()?,
            detail: waveform
                .detail
                .as_ref()
                .map(|level| level_json(level, rate))
                .transpose()?,
        })?;
        return Ok(Outcome::Success);
    }
    println!("file: {}", waveform.file_id);
    println!("sample rate: {rate} Hz");
    println!(
        "duration: {} ({:.3} s)",
        minutes_seconds(waveform.duration_seconds),
        waveform.duration_seconds
    );
    match &waveform.overview {
        Some(level) => {
            println!("{}", describe("overview", level, rate)?);
            println!("{}", sparkline(&pairs(level)?, SPARKLINE_COLUMNS));
        }
        None => println!("overview: none"),
    }
    match &waveform.detail {
        Some(level) => println!("{}", describe("detail", level, rate)?),
        None => println!("detail: none (the overview is already that fine)"),
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn level(peaks: &[i8]) -> WaveformLevel {
        WaveformLevel {
            samples_per_pair: 480,
            pair_count: (peaks.len() / 2) as u32,
            peaks: peaks.iter().map(|v| *v as u8).collect::<Vec<u8>>().into(),
        }
    }

    #[test]
    fn pairs_are_signed_and_counted() {
        assert_eq!(
            pairs(&level(&[-64, 64, -127, 127])).unwrap(),
            [[-64, 64], [-127, 127]]
        );
        let mut short = level(&[-1, 1]);
        short.pair_count = 2;
        assert!(
            pairs(&short)
                .unwrap_err()
                .to_string()
                .contains("2 pairs carries 2 bytes")
        );
    }

    #[test]
    fn peak_and_sparkline_follow_the_loudest_pair() {
        let quiet_then_loud = pairs(&level(&[0, 0, -10, 12, -127, 100, 0, 0])).unwrap();
        assert!((peak(&quiet_then_loud) - 1.0).abs() < 1e-9);
        assert_eq!(sparkline(&quiet_then_loud, 4), "▁▂█▁");
        assert_eq!(sparkline(&quiet_then_loud, 2), "▂█");
        assert_eq!(
            describe("detail", &level(&[-64, 63]), 48_000).unwrap(),
            "detail: 1 pairs of 480 samples (10.00 ms each), peak 0.50 (-6.0 dBFS)"
        );
    }
}
