use super::*;

fn rec(file_id: u64, filename: &str, tags: &[&str]) -> TextRecord {
    TextRecord {
        file_id,
        filename: filename.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

fn sample() -> Vec<TextRecord> {
    vec![
        rec(1, "KickDrum_Hard-01.wav", &["drums", "one shot"]),
        rec(2, "SnareDrum_Soft-02.wav", &["drums", "one shot"]),
        rec(3, "dusty_vinyl_loop_90bpm.flac", &["vinyl", "drum loop"]),
        rec(4, "Pad Warm C#.aiff", &["pads", "ambient"]),
        rec(5, "HTTPServerNoise.mp3", &["noise"]),
    ]
}

fn index() -> TextIndex {
    let index = TextIndex::in_ram().unwrap();
    index.rebuild(sample()).unwrap();
    index
}

fn ids(hits: &[(u64, f32)]) -> Vec<u64> {
    hits.iter().map(|h| h.0).collect()
}

fn sorted(set: HashSet<u64>) -> Vec<u64> {
    let mut v: Vec<u64> = set.into_iter().collect();
    v.sort_unstable();
    v
}

#[test]
fn tokenizer_splits_names() {
    assert_eq!(
        tokenize("KickDrum_Hard-01.wav"),
        ["kick", "drum", "hard", "01", "wav"]
    );
    assert_eq!(
        tokenize("dusty_vinyl_loop_90bpm"),
        ["dusty", "vinyl", "loop", "90", "bpm"]
    );
    assert_eq!(
        tokenize("HTTPServerNoise.mp3"),
        ["http", "server", "noise", "mp", "3"]
    );
    assert_eq!(tokenize("  Pad Warm C#.aiff "), ["pad", "warm", "c", "aiff"]);
    assert_eq!(tokenize("Ünïcode_ÄrgerBass"), ["ünïcode", "ärger", "bass"]);
    assert_eq!(tokenize("808s&Vocals"), ["808", "s", "vocals"]);
    assert_eq!(tokenize("ABC"), ["abc"]);
    assert!(tokenize("__--..  ").is_empty());
}

#[test]
fn tokenizer_reports_offsets_and_positions() {
    let mut t = WordSplitter;
    let mut stream = t.token_stream("KickDrum_01");
    let mut seen = Vec::new();
    while let Some(tok) = stream.next() {
        seen.push((tok.text.clone(), tok.offset_from, tok.offset_to, tok.position));
    }
    assert_eq!(
        seen,
        [
            ("kick".into(), 0, 4, 0),
            ("drum".into(), 4, 8, 1),
            ("01".to_string(), 9, 11, 2)
        ]
    );
}

#[test]
fn search_requires_every_word() {
    let index = index();
    assert_eq!(sorted(index.matching_ids("drum").unwrap()), [1, 2, 3]);
    assert_eq!(ids(&index.search("kick drum", 10).unwrap()), [1]);
    assert_eq!(ids(&index.search("Drum Loop", 10).unwrap()), [3]);
    assert_eq!(ids(&index.search("hard", 10).unwrap()), [1]);
    assert_eq!(ids(&index.search("90 bpm vinyl", 10).unwrap()), [3]);
    assert!(index.search("kick pad", 10).unwrap().is_empty());
    assert!(index.search("  ..  ", 10).unwrap().is_empty());
    assert!(index.matching_ids("").unwrap().is_empty());
    // Tags match too.
    assert_eq!(sorted(index.matching_ids("ambient").unwrap()), [4]);
    assert_eq!(ids(&index.search("server", 10).unwrap()), [5]);
}

#[test]
fn search_ranks_and_limits() {
    let index = index();
    let hits = index.search("drum", 10).unwrap();
    assert_eq!(hits.len(), 3);
    assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1 && w[1].1 > 0.0));
    assert_eq!(sorted(ids(&hits).into_iter().collect()), [1, 2, 3]);
    assert_eq!(index.search("drum", 2).unwrap().len(), 2);
    assert!(index.search("drum", 0).unwrap().is_empty());
}

#[test]
fn upsert_delete_commit() {
    let index = index();
    index.upsert(&rec(1, "Clap_Tight.wav", &["claps"])).unwrap();
    index.delete(2);
    // Not visible before the commit.
    assert_eq!(sorted(index.matching_ids("drum").unwrap()), [1, 2, 3]);
    index.commit().unwrap();
    assert_eq!(sorted(index.matching_ids("drum").unwrap()), [3]);
    assert_eq!(sorted(index.matching_ids("clap").unwrap()), [1]);
    assert_eq!(index.num_docs(), 4);
    index.upsert(&rec(6, "NewKick.wav", &[])).unwrap();
    index.commit().unwrap();
    assert_eq!(sorted(index.matching_ids("kick").unwrap()), [6]);
}

#[test]
fn suggest_completes_tags_and_names_with_counts() {
    let index = index();
    let s = index.suggest("dr", 10).unwrap();
    assert_eq!(
        s,
        [
            Suggestion {
                term: "drum".into(),
                doc_count: 3
            },
            Suggestion {
                term: "drums".into(),
                doc_count: 2
            },
            Suggestion {
                term: "drum loop".into(),
                doc_count: 1
            },
        ]
    );
    assert_eq!(
        index.suggest("One S", 10).unwrap(),
        [Suggestion {
            term: "one shot".into(),
            doc_count: 2
        }]
    );
    assert_eq!(index.suggest("dr", 1).unwrap().len(), 1);
    assert!(index.suggest("zzz", 10).unwrap().is_empty());
    assert!(index.suggest("", 10).unwrap().is_empty());
    // Deleted files no longer count.
    index.delete(1);
    index.delete(2);
    index.commit().unwrap();
    assert_eq!(
        index.suggest("drum", 10).unwrap(),
        [
            Suggestion {
                term: "drum".into(),
                doc_count: 1
            },
            Suggestion {
                term: "drum loop".into(),
                doc_count: 1
            },
        ]
    );
}

#[test]
fn rebuild_replaces_everything() {
    let index = index();
    index.rebuild(vec![rec(10, "Only_One.wav", &[])]).unwrap();
    assert_eq!(index.num_docs(), 1);
    assert!(index.matching_ids("drum").unwrap().is_empty());
    assert_eq!(sorted(index.matching_ids("only one").unwrap()), [10]);
}
