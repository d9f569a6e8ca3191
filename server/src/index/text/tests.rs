use super::*;

fn rec(file_id: u64, filename: &str, tags: &[&str], text: &str) -> TextRecord {
    TextRecord {
        file_id,
        filename: filename.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        text: text.into(),
    }
}

fn sample() -> Vec<TextRecord> {
    vec![
        rec(1, "KickDrum_Hard-01.wav", &["drums", "one shot"], "punchy kick"),
        rec(2, "SnareDrum_Soft-02.wav", &["drums", "one shot"], ""),
        rec(
            3,
            "dusty_vinyl_loop_90bpm.flac",
            &["vinyl", "drum loop"],
            "lofi crackle drum loop",
        ),
        rec(4, "Pad Warm C#.aiff", &["pads", "ambient"], "warm evolving pad"),
        rec(5, "HTTPServerNoise.mp3", &["noise"], "server room hum"),
    ]
}

fn index() -> TextIndex {
    let index = TextIndex::in_ram().unwrap();
    index.rebuild(sample(), 5).unwrap();
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
    // Tags and free text match too.
    assert_eq!(sorted(index.matching_ids("ambient").unwrap()), [4]);
    assert_eq!(sorted(index.matching_ids("crackle").unwrap()), [3]);
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
    index.upsert(&rec(1, "Clap_Tight.wav", &["claps"], "")).unwrap();
    index.delete(2);
    // Not visible before the commit.
    assert_eq!(sorted(index.matching_ids("drum").unwrap()), [1, 2, 3]);
    index.commit().unwrap();
    assert_eq!(sorted(index.matching_ids("drum").unwrap()), [3]);
    assert_eq!(sorted(index.matching_ids("clap").unwrap()), [1]);
    assert_eq!(index.num_docs(), 4);
    index.upsert(&rec(6, "NewKick.wav", &[], "")).unwrap();
    index.commit_with_high_water_mark(9).unwrap();
    assert_eq!(index.high_water_mark(), Some(9));
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
    // Free text is not suggested; deleted files no longer count.
    assert!(index.suggest("crack", 10).unwrap().is_empty());
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
    index.rebuild(vec![rec(10, "Only_One.wav", &[], "")], 11).unwrap();
    assert_eq!(index.num_docs(), 1);
    assert!(index.matching_ids("drum").unwrap().is_empty());
    assert_eq!(sorted(index.matching_ids("only one").unwrap()), [10]);
    assert_eq!(index.high_water_mark(), Some(11));
}

#[test]
fn on_disk_open_persists_and_detects_schema_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text");
    {
        let (index, needs_rebuild) = TextIndex::open(&path).unwrap();
        assert!(needs_rebuild, "a new index must be filled from the DB");
        index.upsert(&rec(1, "Partial.wav", &[], "")).unwrap();
        index.commit().unwrap();
    }
    {
        let (index, needs_rebuild) = TextIndex::open(&path).unwrap();
        assert!(
            needs_rebuild,
            "commits without a completed rebuild are not trusted"
        );
        index.rebuild(sample(), 77).unwrap();
    }
    {
        let (index, needs_rebuild) = TextIndex::open(&path).unwrap();
        assert!(!needs_rebuild);
        assert_eq!(index.num_docs(), 5);
        assert_eq!(index.high_water_mark(), Some(77));
        assert_eq!(ids(&index.search("kick", 10).unwrap()), [1]);
        index.upsert(&rec(9, "Later.wav", &[], "")).unwrap();
        index.commit().unwrap();
    }
    {
        let (index, needs_rebuild) = TextIndex::open(&path).unwrap();
        assert!(!needs_rebuild, "later commits keep the rebuilt flag");
        assert_eq!(index.num_docs(), 6);
    }
    // Another schema version: wiped and flagged.
    fs::write(path.join(VERSION_FILE), br#"{"schema_version":0}"#).unwrap();
    let (index, needs_rebuild) = TextIndex::open(&path).unwrap();
    assert!(needs_rebuild);
    assert_eq!(index.num_docs(), 0);
    drop(index);
    // Garbage in meta.json: also wiped and flagged.
    fs::write(path.join("meta.json"), b"garbage").unwrap();
    let (index, needs_rebuild) = TextIndex::open(&path).unwrap();
    assert!(needs_rebuild);
    assert_eq!(index.num_docs(), 0);
}

#[test]
fn open_refuses_a_foreign_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("precious.txt"), b"keep me").unwrap();
    let err = TextIndex::open(dir.path()).unwrap_err();
    assert!(matches!(err, IndexError::Corrupt { .. }), "{err}");
    assert!(dir.path().join("precious.txt").exists());
}
