//! Filters are exact: each returns exactly the qualifying files.

use std::collections::BTreeSet;

use traum_proto::v1 as pb;

use super::{Library, expected, ids_for};
use crate::both_backends;
use crate::support::Backend;

async fn every_filter_returns_exactly_the_qualifying_files(backend: Backend) {
    let library = Library::open(backend).await;
    let server = &library.server;
    let tones = library.ids(&["sine_440.wav", "sine_1000.wav", "tone.flac"]);
    let cases = [
        (
            pb::SearchFilters {
                tags_all: vec!["tone".into()],
                ..Default::default()
            },
            tones.clone(),
        ),
        (
            pb::SearchFilters {
                tags_none: vec!["tone".into()],
                ..Default::default()
            },
            library.ids(&["KickDrum_Hard-01.wav", "warm_pad.wav"]),
        ),
        (
            pb::SearchFilters {
                tags_any: vec!["pad".into(), "flac".into()],
                ..Default::default()
            },
            library.ids(&["warm_pad.wav", "tone.flac"]),
        ),
        (
            pb::SearchFilters {
                formats: vec![pb::AudioFormat::Flac as i32],
                ..Default::default()
            },
            library.ids(&["tone.flac"]),
        ),
        (
            pb::SearchFilters {
                min_duration_seconds: Some(5.0),
                ..Default::default()
            },
            library.ids(&["KickDrum_Hard-01.wav", "warm_pad.wav"]),
        ),
        (
            pb::SearchFilters {
                keywords: "kick".into(),
                ..Default::default()
            },
            library.ids(&["KickDrum_Hard-01.wav"]),
        ),
        (
            pb::SearchFilters {
                keywords: "sine".into(),
                max_duration_seconds: Some(3.5),
                ..Default::default()
            },
            library.ids(&["sine_440.wav"]),
        ),
    ];
    for (filters, want) in cases {
        assert_eq!(ids_for(server, filters.clone()).await, want, "{filters:?}");
    }

    let in_range: BTreeSet<String> = library
        .files
        .values()
        .filter(|f| {
            f.descriptors
                .as_ref()
                .and_then(|d| d.bpm)
                .is_some_and(|bpm| (100.0..=140.0).contains(&bpm))
        })
        .map(|f| f.file_id.clone())
        .collect();
    assert!(
        in_range.contains(&library.id("KickDrum_Hard-01.wav")),
        "the drum loop has a tempo"
    );
    let filters = pb::SearchFilters {
        min_bpm: Some(100.0),
        max_bpm: Some(140.0),
        ..Default::default()
    };
    assert_eq!(ids_for(server, filters).await, in_range);

    // Half- and double-time readings: the drum loop's tempo halved lies in
    // 50–70 BPM, and only the option lets that range find it.
    let half_or_double =
        |bpm: f64, lo: f64, hi: f64| [bpm, bpm / 2.0, bpm * 2.0].iter().any(|b| (lo..=hi).contains(b));
    let readings_in = |lo: f64, hi: f64| -> BTreeSet<String> {
        library
            .files
            .values()
            .filter(|f| {
                f.descriptors
                    .as_ref()
                    .and_then(|d| d.bpm)
                    .is_some_and(|bpm| half_or_double(bpm, lo, hi))
            })
            .map(|f| f.file_id.clone())
            .collect()
    };
    let slow = |half_or_double: bool| pb::SearchFilters {
        min_bpm: Some(50.0),
        max_bpm: Some(70.0),
        bpm_half_or_double: half_or_double,
        ..Default::default()
    };
    assert!(readings_in(50.0, 70.0).contains(&library.id("KickDrum_Hard-01.wav")));
    assert_eq!(ids_for(server, slow(true)).await, readings_in(50.0, 70.0));
    assert!(
        !ids_for(server, slow(false))
            .await
            .contains(&library.id("KickDrum_Hard-01.wav"))
    );
    let drums = library.files["KickDrum_Hard-01.wav"].descriptors.clone().unwrap();
    let bpm = drums.bpm.unwrap();
    let readings: Vec<f64> = drums.bpm_alternatives.iter().map(|r| r.bpm).collect();
    assert_eq!(readings.len(), 2, "{drums:?}");
    assert!(
        (readings[0] - bpm / 2.0).abs() <= 0.1 && (readings[1] - bpm * 2.0).abs() <= 0.1,
        "{drums:?}"
    );
    assert!(
        drums
            .bpm_alternatives
            .iter()
            .all(|r| (0.0..=1.0).contains(&r.score)),
        "{drums:?}"
    );

    let expected = expected().await;
    let mut cosines: Vec<f64> = expected
        .vectors
        .values()
        .map(|v| super::expected_match(v, &expected.query).0)
        .collect();
    cosines.sort_by(|a, b| b.total_cmp(a));
    let filters = pb::SearchFilters {
        min_score: Some(cosines[2] - 1e-6),
        ..Default::default()
    };
    assert_eq!(ids_for(server, filters).await.len(), 3);
    library.close().await;
}
both_backends!(every_filter_returns_exactly_the_qualifying_files);
