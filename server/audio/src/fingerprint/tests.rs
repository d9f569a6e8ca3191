//! Fingerprint tests on synthetic songs: one voice over a drum loop, all at
//! the same tempo and in the same key, so that different songs differ only
//! in their melodies and chords.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use super::*;
use crate::testgen::{Lcg, LoopSpec, RATE, Style, render_loop, write_wav};
use crate::{DecodeOptions, decode_to_vec};

/// Tempo of every song, BPM.
const BPM: f64 = 120.0;

/// Songs whose transcodes are committed under `tests/fixtures/fingerprint/`.
const FIXTURE_SONGS: u32 = 4;
/// Their length, seconds.
const FIXTURE_SECONDS: f64 = 12.0;

/// Offsets must be within this of the truth, seconds.
const OFFSET_TOLERANCE: f64 = 0.05;

const TABLE_LEN: usize = 2048;

/// One period of a piano-like tone: ten harmonics falling off as 1/h^1.1.
fn piano_table() -> Vec<f64> {
    (0..TABLE_LEN)
        .map(|i| {
            let phase = 2.0 * PI * i as f64 / TABLE_LEN as f64;
            (1..=10)
                .map(|h| (phase * f64::from(h)).sin() / f64::from(h).powf(1.1))
                .sum()
        })
        .collect()
}

/// Adds one note (MIDI number): 5 ms attack, decay over 0.6 s, 30 ms release.
fn add_note(out: &mut [f64], table: &[f64], midi: f64, start: f64, seconds: f64, amplitude: f64) {
    let rate = f64::from(RATE);
    let step = 440.0 * 2f64.powf((midi - 69.0) / 12.0) * TABLE_LEN as f64 / rate;
    let first = (start * rate) as usize;
    let release = 0.03;
    let last = (first + ((seconds + release) * rate) as usize).min(out.len());
    let decay_step = (-1.0 / (0.6 * rate)).exp();
    let (mut position, mut decay) = (0.0f64, 1.0f64);
    for (n, sample) in out[first.min(last)..last].iter_mut().enumerate() {
        let t = n as f64 / rate;
        let envelope = (t / 0.005).min(1.0) * ((seconds + release - t) / release).clamp(0.0, 1.0) * decay;
        let index = position as usize;
        let fraction = position - index as f64;
        let value = table[index] + (table[(index + 1) % TABLE_LEN] - table[index]) * fraction;
        *sample += amplitude * envelope * value;
        position += step;
        if position >= TABLE_LEN as f64 {
            position -= TABLE_LEN as f64;
        }
        decay *= decay_step;
    }
}

/// A song: random chords (I, ii, IV, V, vi of C major, one per bar) under
/// a random eighth-and-quarter-note melody, all played by the same voice,
/// over the crate's rock drum loop at [`BPM`]; peak at 0.8.
fn render_song(seed: u32, seconds: f64) -> Vec<f32> {
    let rate = f64::from(RATE);
    let mut out = vec![0.0f64; (seconds * rate) as usize];
    let table = piano_table();
    let mut rng = Lcg::new(seed.wrapping_mul(2_654_435_761) ^ 0x9e37_79b9);
    let mut pick = |n: usize| ((rng.next() + 1.0) * 0.5 * n as f64) as usize % n;
    let beat = 60.0 / BPM;
    let chords: [[f64; 3]; 5] = [
        [0.0, 4.0, 7.0],
        [2.0, 5.0, 9.0],
        [5.0, 9.0, 12.0],
        [7.0, 11.0, 14.0],
        [9.0, 12.0, 16.0],
    ];
    let scale = [0.0, 2.0, 4.0, 5.0, 7.0, 9.0, 11.0];
    let mut degree = 7usize;
    let bars = (seconds / (4.0 * beat)).ceil() as usize;
    for bar in 0..bars {
        let start = bar as f64 * 4.0 * beat;
        for tone in chords[pick(chords.len())] {
            add_note(&mut out, &table, 48.0 + tone, start, 4.0 * beat * 0.95, 0.12);
        }
        let mut eighth = 0;
        while eighth < 8 {
            let length = if pick(10) < 7 { 1 } else { 2 }.min(8 - eighth);
            degree = (degree + pick(5)).saturating_sub(2).min(14);
            let midi = 60.0 + 12.0 * (degree / 7) as f64 + scale[degree % 7];
            let note_start = start + eighth as f64 * beat / 2.0;
            add_note(
                &mut out,
                &table,
                midi,
                note_start,
                length as f64 * beat / 2.0 * 0.9,
                0.3,
            );
            eighth += length;
        }
    }
    let drums = render_loop(&LoopSpec {
        name: "fingerprint".into(),
        bpm: BPM,
        style: Style::Rock,
        swing: false,
        noise: false,
    });
    for (sample, drum) in out.iter_mut().zip(drums.iter().cycle()) {
        *sample += 0.5 * f64::from(*drum);
    }
    let peak = out.iter().fold(0.0f64, |peak, sample| peak.max(sample.abs()));
    out.into_iter()
        .map(|sample| (0.8 * sample / peak) as f32)
        .collect()
}

fn fingerprint(samples: &[f32]) -> Fingerprint {
    Fingerprint::compute(samples, RATE).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/fingerprint")
        .join(name)
}

fn decode(path: &Path) -> Vec<f32> {
    decode_to_vec(path, &DecodeOptions::default(), |_| {})
        .unwrap_or_else(|err| panic!("decoding {}: {err}", path.display()))
        .0
}

/// Samples cut from the start of fixture song `k`: the first 20 %.
fn trim_samples(samples: usize) -> usize {
    samples / 5
}

/// Runs `work` over `items` on all cores.
fn parallel_map<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&work).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect()
    })
}

/// Resamples 48 kHz to `rate` with rubato (the delay removed), for the
/// low-sample-rate variant.
fn resample_down(samples: &[f32], rate: u32) -> Vec<f32> {
    use rubato::{FftFixedIn, Resampler};
    let chunk = 1024;
    let mut resampler = FftFixedIn::<f32>::new(RATE as usize, rate as usize, chunk, 2, 1).unwrap();
    let delay = resampler.output_delay();
    let mut out = Vec::new();
    let mut padded = samples.to_vec();
    padded.resize(
        samples.len() + 4 * chunk + delay * RATE as usize / rate as usize,
        0.0,
    );
    for block in padded.chunks_exact(chunk) {
        let produced = resampler.process(&[block], None).unwrap();
        out.extend_from_slice(&produced[0]);
    }
    let wanted = samples.len() * rate as usize / RATE as usize;
    out.drain(..delay.min(out.len()));
    out.truncate(wanted);
    out
}

#[test]
fn bytes_round_trip_and_damage_is_an_error() {
    let song = render_song(1, 30.0);
    let print = fingerprint(&song);
    assert!(print.len() > 200, "{} items", print.len());
    let bytes = print.to_bytes();
    assert_eq!(Fingerprint::from_bytes(&bytes).unwrap(), print);
    let per_minute = bytes.len() as f64 / (song.len() as f64 / f64::from(RATE) / 60.0);
    eprintln!(
        "fingerprint storage: {} items in {} bytes ({:.2} B/item, {per_minute:.0} B per minute of audio; raw {:.0})",
        print.len(),
        bytes.len(),
        bytes.len() as f64 / print.len() as f64,
        4.0 * 60.0 / ITEM_SECONDS
    );
    for items in [vec![], vec![0], vec![u32::MAX, 0, 1 << 31, 1, 0x8000_4001]] {
        let print = Fingerprint::from_items(items);
        assert_eq!(Fingerprint::from_bytes(&print.to_bytes()).unwrap(), print);
    }
    assert!(matches!(
        Fingerprint::from_bytes(&[]),
        Err(AudioError::Corrupt(_))
    ));
    assert!(matches!(
        Fingerprint::from_bytes(&bytes[..bytes.len() / 2]),
        Err(AudioError::Corrupt(_))
    ));
    for position in [2, bytes.len() / 2, bytes.len() - 1] {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x10;
        assert!(
            matches!(Fingerprint::from_bytes(&damaged), Err(AudioError::Corrupt(_))),
            "byte {position} flipped"
        );
    }
    let mut future = bytes.clone();
    future[0] = FORMAT_VERSION + 1;
    let err = Fingerprint::from_bytes(&future).unwrap_err();
    assert!(matches!(err, AudioError::Unsupported(_)), "{err}");
    // A correct checksum over nonsense is still caught.
    let mut forged = vec![FORMAT_VERSION, ALGORITHM, 3, 0xff, 0xff];
    let crc = crc32fast::hash(&forged);
    forged.extend_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        Fingerprint::from_bytes(&forged),
        Err(AudioError::Corrupt(_))
    ));
}

#[test]
fn streaming_equals_whole() {
    let song = render_song(2, 10.0);
    let mut printer = Fingerprinter::new(RATE).unwrap();
    for block in song.chunks(4099) {
        printer.push(block);
    }
    assert_eq!(printer.finish(), fingerprint(&song));
    assert!(Fingerprint::compute(&[], RATE).unwrap().is_empty());
    assert!(Fingerprinter::new(0).is_err());
}

#[test]
fn trims_anywhere_are_found_within_50_ms() {
    let song = render_song(3, 30.0);
    let original = fingerprint(&song);
    let cuts: Vec<f64> = (0..24).map(|i| 0.013 + 0.2377 * f64::from(i)).collect();
    let results = parallel_map(&cuts, |&cut| {
        let trimmed = fingerprint(&song[(cut * f64::from(RATE)) as usize..]);
        (compare(&original, &trimmed), compare(&trimmed, &original))
    });
    let mut worst = 0.0f64;
    for (&cut, (forward, backward)) in cuts.iter().zip(&results) {
        let forward = forward.unwrap_or_else(|| panic!("cut {cut}: no match"));
        let backward = backward.unwrap_or_else(|| panic!("cut {cut}: no match backwards"));
        let error = (forward.offset_seconds - cut)
            .abs()
            .max((backward.offset_seconds + cut).abs());
        worst = worst.max(error);
        assert!(
            error <= OFFSET_TOLERANCE,
            "cut {cut:.3} s: offsets {:.3} / {:.3}",
            forward.offset_seconds,
            backward.offset_seconds
        );
    }
    eprintln!(
        "trims: {} cuts, worst offset error {:.1} ms",
        cuts.len(),
        1000.0 * worst
    );
}

/// One fixture song's variants: name, samples, true offset (seconds).
fn variants(k: u32, dir: &Path) -> Vec<(String, Vec<f32>, f64)> {
    let song = render_song(100 + k, FIXTURE_SECONDS);
    let rate = f64::from(RATE);
    let cut = trim_samples(song.len());
    let through_file = |name: &str, samples: &[f32], file_rate: u32| {
        let path = dir.join(format!("song{k}_{name}.wav"));
        write_wav(&path, samples, file_rate).unwrap();
        decode(&path)
    };
    let mut out = vec![
        ("original".to_string(), through_file("original", &song, RATE), 0.0),
        (
            "wav 22.05 kHz".into(),
            through_file("22k", &resample_down(&song, 22_050), 22_050),
            0.0,
        ),
        (
            "trimmed 20 %".into(),
            through_file("trim", &song[cut..], RATE),
            cut as f64 / rate,
        ),
        (
            "-6 dB".into(),
            through_file(
                "quiet",
                &song.iter().map(|s| s * 0.501_187).collect::<Vec<_>>(),
                RATE,
            ),
            0.0,
        ),
    ];
    let mp3 = decode(&fixture(&format!("song{k}.mp3")));
    let ogg = decode(&fixture(&format!("song{k}.ogg")));
    let odd_cut = cut + 3_001;
    out.push((
        "mp3 128k trimmed 20 % + 62 ms".into(),
        mp3[odd_cut..].to_vec(),
        odd_cut as f64 / rate,
    ));
    out.push((
        "ogg q3 -6 dB".into(),
        ogg.iter().map(|s| s * 0.501_187).collect(),
        0.0,
    ));
    out.push(("mp3 128k 44.1 kHz".into(), mp3, 0.0));
    out.push(("ogg vorbis q3".into(), ogg, 0.0));
    out.push((
        "aac 96k m4a 44.1 kHz".into(),
        decode(&fixture(&format!("song{k}.m4a"))),
        0.0,
    ));
    out.push((
        "aac 96k m4a trimmed 20 %".into(),
        decode(&fixture(&format!("song{k}_trim.m4a"))),
        cut as f64 / rate,
    ));
    out
}

#[test]
fn transcodes_trims_and_gain_changes_group_with_their_original() {
    let dir = tempfile::tempdir().unwrap();
    let songs: Vec<u32> = (0..FIXTURE_SONGS).collect();
    let all = parallel_map(&songs, |&k| {
        variants(k, dir.path())
            .into_iter()
            .map(|(name, samples, truth)| (name, fingerprint(&samples), truth))
            .collect::<Vec<_>>()
    });
    // Ids: song k's variants are 100 k + v, the original 100 k.
    let mut files = Vec::new();
    let mut truth: HashMap<i64, (u32, String, f64)> = HashMap::new();
    for (k, song) in all.iter().enumerate() {
        for (v, (name, print, offset)) in song.iter().enumerate() {
            let id = 100 * k as i64 + v as i64;
            truth.insert(id, (k as u32, name.clone(), *offset));
            files.push((id, print.clone()));
        }
    }
    let groups = group_duplicates(files.iter().map(|(id, print)| (*id, print)));
    let (mut found, mut expected, mut false_members, mut worst) = (0, 0, 0, 0.0f64);
    let mut lowest = 1.0f64;
    for (k, song) in all.iter().enumerate() {
        let original = 100 * k as i64;
        let group = groups.iter().find(|group| group.members[0].id == original);
        for (v, (name, _, offset)) in song.iter().enumerate().skip(1) {
            expected += 1;
            let id = original + v as i64;
            let member = group.and_then(|group| group.members.iter().find(|m| m.id == id));
            match member {
                Some(member) if (member.offset_seconds - offset).abs() <= OFFSET_TOLERANCE => {
                    found += 1;
                    worst = worst.max((member.offset_seconds - offset).abs());
                    lowest = lowest.min(member.score);
                    eprintln!(
                        "song {k} {name}: score {:.3}, offset {:+.3} s (truth {offset:+.3} s)",
                        member.score, member.offset_seconds
                    );
                }
                Some(member) => eprintln!(
                    "song {k} {name}: MISS, offset {:+.3} s (truth {offset:+.3} s), score {:.3}",
                    member.offset_seconds, member.score
                ),
                None => eprintln!("song {k} {name}: MISS, not grouped with the original"),
            }
        }
    }
    for group in &groups {
        let song = truth[&group.members[0].id].0;
        false_members += group.members.iter().filter(|m| truth[&m.id].0 != song).count();
    }
    eprintln!(
        "duplicates: recall {found}/{expected} ({:.1} %), worst offset error {:.1} ms, lowest score {lowest:.3}; \
         {} groups for {FIXTURE_SONGS} songs, {false_members} members in a wrong group",
        100.0 * f64::from(found) / f64::from(expected),
        1000.0 * worst,
        groups.len()
    );
    assert_eq!(found, expected, "variants grouped with the right offset");
    assert_eq!(groups.len(), FIXTURE_SONGS as usize, "one group per song");
    assert_eq!(false_members, 0, "false positives");
}

/// A kick on every beat and a noise hat on every off-beat eighth, nothing
/// else (the integration tests' drum loop).
fn kick_and_hat(bpm: f64, seconds: f64) -> Vec<f32> {
    let rate = f64::from(RATE);
    let mut samples = vec![0f32; (seconds * rate) as usize];
    let mut noise = Lcg::new(7);
    let beat = 60.0 / bpm;
    let mut eighth = 0usize;
    while ((eighth as f64 * beat / 2.0 * rate) as usize) < samples.len() {
        let start = (eighth as f64 * beat / 2.0 * rate) as usize;
        let is_beat = eighth.is_multiple_of(2);
        let decay = if is_beat { 0.12 } else { 0.03 };
        let end = (start + (decay * 4.0 * rate) as usize).min(samples.len());
        for (i, sample) in samples[start..end].iter_mut().enumerate() {
            let t = i as f64 / rate;
            let value = if is_beat {
                0.8 * (2.0 * PI * (50.0 + 100.0 * (-t / 0.02).exp()) * t).sin()
            } else {
                0.125 * noise.next()
            };
            *sample += (value * (-t / decay).exp()) as f32;
        }
        eighth += 1;
    }
    samples
}

#[test]
fn bare_drum_loops_at_other_tempi_do_not_match() {
    // Such loops leave most fingerprint bits constant, so any two agree on
    // most bits by chance: scored as 1 − 2 × BER, four-on-the-floor loops at
    // 90 and 120 BPM came out at 0.72, and kick-and-hat ones at 0.73.
    let loops: Vec<(String, Fingerprint)> = Style::ALL
        .iter()
        .flat_map(|&style| {
            [90.0, 120.0, 150.0].map(|bpm| {
                let samples = render_loop(&LoopSpec {
                    name: format!("{style:?} {bpm}"),
                    bpm,
                    style,
                    swing: false,
                    noise: false,
                });
                (format!("{style:?} {bpm}"), fingerprint(&samples))
            })
        })
        .chain([90.0, 120.0, 150.0].map(|bpm| {
            (
                format!("kick and hat {bpm}"),
                fingerprint(&kick_and_hat(bpm, 12.0)),
            )
        }))
        .collect();
    for (i, (a_name, a)) in loops.iter().enumerate() {
        for (b_name, b) in &loops[i + 1..] {
            assert_eq!(
                compare(a, b),
                None,
                "{a_name} vs {b_name}: {:?}",
                best_alignment(a, b)
            );
        }
        assert!(
            compare(a, a).is_some_and(|m| m.score == 1.0),
            "{a_name} matches itself"
        );
    }
}

#[test]
fn chance_error_rate_follows_the_bit_balance() {
    let balanced = [0.5f32; 32];
    assert!((chance_error_rate(&balanced, &balanced) - 0.5).abs() < 1e-12);
    let constant = [1.0f32; 32];
    assert_eq!(chance_error_rate(&constant, &constant), 0.0);
    let mut mixed = [0.0f32; 32];
    mixed[..16].fill(1.0);
    assert!((chance_error_rate(&mixed, &constant) - 0.5).abs() < 1e-12);
}

#[test]
fn different_songs_with_the_same_voice_and_tempo_do_not_match() {
    let seeds: Vec<u32> = (1000..1050).collect();
    let prints = parallel_map(&seeds, |&seed| fingerprint(&render_song(seed, 20.0)));
    let mut scores = Vec::new();
    let mut false_pairs = 0;
    for i in 0..prints.len() {
        for j in i + 1..prints.len() {
            let found = best_alignment(&prints[i], &prints[j]);
            let score = found.map_or(0.0, |m| m.score);
            false_pairs += usize::from(found.is_some_and(|m| m.is_same_recording()));
            scores.push(score);
        }
    }
    scores.sort_by(f64::total_cmp);
    let groups = group_duplicates(prints.iter().enumerate().map(|(i, print)| (i as i64, print)));
    eprintln!(
        "different songs: {} pairs, {false_pairs} taken for the same recording; scores median {:.3}, \
         99th percentile {:.3}, max {:.3}; {} false groups",
        scores.len(),
        scores[scores.len() / 2],
        scores[scores.len() * 99 / 100],
        scores[scores.len() - 1],
        groups.len()
    );
    assert_eq!(false_pairs, 0, "false positive pairs");
    assert!(groups.is_empty(), "false groups: {groups:?}");
}

#[test]
fn index_insert_remove_and_lookup() {
    let songs: Vec<Vec<f32>> = (0..3).map(|k| render_song(200 + k, 15.0)).collect();
    let prints: Vec<Fingerprint> = songs.iter().map(|song| fingerprint(song)).collect();
    let mut index = FingerprintIndex::new();
    for (id, print) in prints.iter().enumerate() {
        index.insert(id as i64 * 10, print);
    }
    assert_eq!(index.len(), 3);
    let cut = 48_000 * 3 + 1234;
    let trimmed = fingerprint(&songs[1][cut..]);
    let found = index.matches(&trimmed);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, 10);
    assert!((found[0].1.offset_seconds - cut as f64 / 48_000.0).abs() <= OFFSET_TOLERANCE);
    // Every stored print finds itself, scored 1 at offset 0.
    for (id, print) in prints.iter().enumerate() {
        let found = index.matches(print);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, id as i64 * 10);
        assert_eq!(found[0].1.score, 1.0);
        assert!(found[0].1.offset_seconds.abs() < 1e-9);
    }
    index.insert(11, &trimmed);
    let groups = index.duplicate_groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0].members.iter().map(|m| m.id).collect::<Vec<_>>(),
        [10, 11]
    );
    assert!((groups[0].members[1].offset_seconds - cut as f64 / 48_000.0).abs() <= OFFSET_TOLERANCE);
    assert!(index.remove(10));
    assert!(!index.remove(10));
    assert_eq!(index.len(), 3);
    assert_eq!(index.matches(&trimmed)[0].0, 11);
    assert!(index.duplicate_groups().is_empty());
    // Replacing keeps one entry per id.
    index.insert(11, &prints[2]);
    assert_eq!(index.len(), 3);
    assert_eq!(index.matches(&trimmed).len(), 0);
    assert_eq!(index.postings, {
        let mut fresh = FingerprintIndex::new();
        fresh.insert(0, &prints[0]);
        fresh.insert(20, &prints[2]);
        fresh.insert(11, &prints[2]);
        fresh.postings
    });
    // Too short to say anything.
    assert!(index.matches(&Fingerprint::from_items(vec![1, 2, 3])).is_empty());
}

/// Writes the fixture songs' sources for `tests/fixtures/fingerprint/generate.sh`:
/// `song{k}.wav` and `song{k}.trim` (samples to cut) in
/// `$FINGERPRINT_FIXTURE_SOURCES`.
#[test]
#[ignore = "run by tests/fixtures/fingerprint/generate.sh"]
fn write_fixture_sources() {
    let dir = PathBuf::from(std::env::var("FINGERPRINT_FIXTURE_SOURCES").unwrap());
    for k in 0..FIXTURE_SONGS {
        let song = render_song(100 + k, FIXTURE_SECONDS);
        write_wav(&dir.join(format!("song{k}.wav")), &song, RATE).unwrap();
        std::fs::write(
            dir.join(format!("song{k}.trim")),
            trim_samples(song.len()).to_string(),
        )
        .unwrap();
    }
}

/// xorshift64*: fast noise for the synthetic fingerprints.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn word(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }
}

/// Median, min and max of `samples`, milliseconds.
fn summary(mut samples: Vec<f64>) -> String {
    samples.sort_by(f64::total_cmp);
    format!(
        "median {:.3} ms, min {:.3} ms, max {:.3} ms over {} runs",
        1e3 * samples[samples.len() / 2],
        1e3 * samples[0],
        1e3 * samples[samples.len() - 1],
        samples.len()
    )
}

/// Lookup among 100 000 fingerprints of 30 s to 3 min.
///
/// The stored fingerprints are synthetic: each bit is redrawn from one item
/// to the next with the probability that makes as many bits change per item
/// as in real fingerprints of the test songs, a quarter of the bits is set
/// three times in four, another quarter once in four (real items are biased
/// too), so keys are spread and runs as long as in real ones. Among them are
/// 20 real songs of 60 s; each query is one of them trimmed by 20 % and
/// lowered 6 dB, fingerprinted from the audio, and must find its song.
///
/// `cargo test -p traum-audio --release --lib fingerprint::tests::lookup_benchmark -- --ignored --nocapture`
#[test]
#[ignore = "benchmark"]
fn lookup_benchmark() {
    let seeds: Vec<u32> = (500..520).collect();
    let songs = parallel_map(&seeds, |&seed| render_song(seed, 60.0));
    let originals: Vec<Fingerprint> = parallel_map(&songs, |song| fingerprint(song));
    let queries: Vec<Fingerprint> = parallel_map(&songs, |song| {
        let quiet: Vec<f32> = song[song.len() / 5..].iter().map(|s| s * 0.5).collect();
        fingerprint(&quiet)
    });
    let (mut changed, mut pairs) = (0u64, 0u64);
    for print in &originals {
        for pair in print.items().windows(2) {
            changed += u64::from((pair[0] ^ pair[1]).count_ones());
            pairs += 1;
        }
    }
    let flips_per_item = changed as f64 / pairs as f64;
    // A redrawn bit changes with probability 2p(1 − p): 3/8 for a biased one,
    // 1/2 for a fair one, 7/16 on average.
    let redraw = (flips_per_item / 32.0 / (7.0 / 16.0)).min(1.0);
    let redraw_threshold = (redraw * f64::from(u32::MAX)) as u32;
    eprintln!(
        "real songs: {flips_per_item:.2} bits change per item; synthetic bits redrawn with p = {redraw:.3}"
    );

    let total = 100_000usize;
    let started = std::time::Instant::now();
    let mut index = FingerprintIndex::new();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (high, low) = (0xf0f0_0f0fu32 & 0x5555_5555, 0xf0f0_0f0fu32 & 0xaaaa_aaaa);
    let mut items_total = 0usize;
    for id in 0..total - seeds.len() {
        let seconds = 30.0 + 150.0 * (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let len = (seconds / ITEM_SECONDS) as usize;
        let mut items = Vec::with_capacity(len);
        let mut item = rng.word();
        for _ in 0..len {
            let mut redrawn = 0u32;
            for bit in 0..32 {
                if (rng.next() >> 32) as u32 <= redraw_threshold {
                    redrawn |= 1 << bit;
                }
            }
            let (a, b, c) = (rng.word(), rng.word(), rng.word());
            let fresh = (a & !(high | low)) | ((b | c) & high) | (b & c & low);
            item = (item & !redrawn) | (fresh & redrawn);
            items.push(item);
        }
        items_total += len;
        index.insert(id as i64, &Fingerprint::from_items(items));
    }
    for (k, print) in originals.iter().enumerate() {
        items_total += print.len();
        index.insert(1_000_000 + k as i64, print);
    }
    eprintln!(
        "index: {} fingerprints, {:.1} M items, {:.1} M postings, built in {:.1} s; memory about {:.0} MB \
         (items) + {:.0} MB (postings)",
        index.len(),
        items_total as f64 / 1e6,
        index.postings as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        items_total as f64 * 4.0 / 1e6,
        index.postings as f64 * 8.0 / 1e6,
    );
    let mut hit = 0;
    for (k, query) in queries.iter().enumerate() {
        let found = index.matches(query);
        let ok = found.first().is_some_and(|(id, m)| {
            *id == 1_000_000 + k as i64 && (m.offset_seconds - 12.0).abs() <= OFFSET_TOLERANCE
        });
        hit += usize::from(ok);
        if !ok {
            eprintln!("query {k}: {found:?}");
        }
    }
    eprintln!(
        "lookups finding their song at the right offset: {hit}/{}",
        queries.len()
    );
    for query in &queries[..3] {
        std::hint::black_box(index.matches(query));
    }
    let mut times = Vec::new();
    for _ in 0..7 {
        for query in &queries {
            let started = std::time::Instant::now();
            std::hint::black_box(index.matches(query));
            times.push(started.elapsed().as_secs_f64());
        }
    }
    eprintln!("lookup of one 48 s query among {total}: {}", summary(times));
    // What grouping the whole index costs: every stored fingerprint looked
    // up once ([`FingerprintIndex::duplicate_groups`]); timed on a sample.
    let mut self_times = Vec::new();
    for id in (0..total as i64 - seeds.len() as i64).step_by(500) {
        let print = index.get(id).unwrap().clone();
        let started = std::time::Instant::now();
        let found = index.matches(&print);
        self_times.push(started.elapsed().as_secs_f64());
        assert_eq!(found.first().map(|(found, _)| *found), Some(id));
    }
    let mean = self_times.iter().sum::<f64>() / self_times.len() as f64;
    eprintln!(
        "lookup of a stored 30 s-3 min fingerprint: {}; grouping all {total} would take about {:.0} s of CPU",
        summary(self_times),
        mean * total as f64
    );
    assert_eq!(hit, queries.len());
}

/// What fingerprinting adds to a file's pipeline: decoding plus
/// [`crate::analyse`], against [`Fingerprint::compute`] on the same samples,
/// for a 3-minute song as WAV and (when ffmpeg is installed) as MP3.
///
/// `cargo test -p traum-audio --release --lib fingerprint::tests::cost_benchmark -- --ignored --nocapture`
#[test]
#[ignore = "benchmark"]
fn cost_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let song = render_song(7, 180.0);
    let wav = dir.path().join("song.wav");
    write_wav(&wav, &song, RATE).unwrap();
    let mut files = vec![("wav", wav.clone())];
    let mp3 = dir.path().join("song.mp3");
    let encoded = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&wav)
        .args(["-ar", "44100", "-c:a", "libmp3lame", "-b:a", "192k"])
        .arg(&mp3)
        .status()
        .is_ok_and(|status| status.success());
    if encoded {
        files.push(("mp3 44.1 kHz", mp3));
    } else {
        eprintln!("ffmpeg not found: WAV only");
    }
    for (name, path) in files {
        let (mut decode_times, mut analyse_times, mut print_times) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..6 {
            let started = std::time::Instant::now();
            let (samples, report) = decode_to_vec(&path, &DecodeOptions::default(), |_| {}).unwrap();
            let decoded = started.elapsed().as_secs_f64();
            let started = std::time::Instant::now();
            std::hint::black_box(crate::analyse(&samples, RATE, Some(report.levels), |_| {}));
            let analysed = started.elapsed().as_secs_f64();
            let started = std::time::Instant::now();
            std::hint::black_box(fingerprint(&samples));
            let printed = started.elapsed().as_secs_f64();
            if run > 0 {
                decode_times.push(decoded);
                analyse_times.push(analysed);
                print_times.push(printed);
            }
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (d, a, f) = (
            median(decode_times.clone()),
            median(analyse_times.clone()),
            median(print_times.clone()),
        );
        eprintln!("{name} (180 s): decode {}", summary(decode_times));
        eprintln!("{name} (180 s): analyse {}", summary(analyse_times));
        eprintln!("{name} (180 s): fingerprint {}", summary(print_times));
        eprintln!(
            "{name}: fingerprinting adds {:.1} % to decode + analyse ({:.0} ms + {:.0} ms)",
            100.0 * f / (d + a),
            1e3 * d,
            1e3 * a
        );
    }
}
