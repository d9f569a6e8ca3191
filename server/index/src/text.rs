//! Keyword index (tantivy) over each file's name and tags.
//!
//! It lives in memory and is rebuilt from the database at every start: its
//! documents are a filename and a few tags each, so a rebuild is cheap, and
//! an index that is never on disk can never be stale.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

use super::IndexError;

type Result<T, E = IndexError> = std::result::Result<T, E>;

const TOKENIZER: &str = "traum_words";
const WRITER_MEMORY: usize = 32 * 1024 * 1024;
/// Name matches rank above tag matches.
const FILENAME_BOOST: f32 = 2.0;
const TAG_BOOST: f32 = 1.5;

/// What the text index knows about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRecord {
    pub file_id: u64,
    pub filename: String,
    pub tags: Vec<String>,
}

/// A completion for a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub term: String,
    /// Live files containing the term in their name or tags.
    pub doc_count: u64,
}

#[derive(Clone, Copy)]
struct Fields {
    file_id: Field,
    filename: Field,
    tags: Field,
    /// Each tag whole and lowercased, for multi-word tag suggestions.
    tag_raw: Field,
}

impl Fields {
    fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        let words = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let fields = Fields {
            file_id: b.add_u64_field("file_id", INDEXED | FAST),
            filename: b.add_text_field("filename", words.clone()),
            tags: b.add_text_field("tags", words),
            tag_raw: b.add_text_field("tag_raw", STRING),
        };
        (b.build(), fields)
    }
}

/// The keyword index. All methods take `&self`; writes are serialised by an
/// internal lock and become visible to searches at [`commit`](Self::commit).
pub struct TextIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    fields: Fields,
}

impl std::fmt::Debug for TextIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextIndex")
            .field("docs", &self.num_docs())
            .finish()
    }
}

impl TextIndex {
    /// An empty in-memory index (tests, tools).
    pub fn in_ram() -> Result<Self> {
        let (schema, fields) = Fields::schema();
        Self::with_index(Index::create_in_ram(schema), fields)
    }

    fn with_index(index: Index, fields: Fields) -> Result<Self> {
        index.tokenizers().register(TOKENIZER, WordSplitter);
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(TextIndex {
            reader,
            writer: Mutex::new(writer),
            fields,
        })
    }

    /// Adds or replaces the file's entry (visible after the next commit).
    pub fn upsert(&self, record: &TextRecord) -> Result<()> {
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        writer.delete_term(Term::from_field_u64(self.fields.file_id, record.file_id));
        writer.add_document(self.document(record))?;
        Ok(())
    }

    /// Removes the file's entry (effective at the next commit).
    pub fn delete(&self, file_id: u64) {
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        writer.delete_term(Term::from_field_u64(self.fields.file_id, file_id));
    }

    /// Makes pending writes visible to searches.
    pub fn commit(&self) -> Result<()> {
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// Replaces the whole content with `records` and commits. Searches see
    /// the old content until the commit.
    pub fn rebuild(&self, records: impl IntoIterator<Item = TextRecord>) -> Result<()> {
        {
            let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            writer.delete_all_documents()?;
            for record in records {
                writer.add_document(self.document(&record))?;
            }
        }
        self.commit()
    }

    /// Live documents as of the last commit.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Files matching every word of `query` (in name, tags or text), best
    /// BM25 score first. A query without words matches nothing.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<(u64, f32)>> {
        let Some(query) = self.query(query) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut out = Vec::with_capacity(top.len());
        let mut ids = IdReader::new(&searcher);
        for (score, addr) in top {
            out.push((ids.get(addr)?, score));
        }
        Ok(out)
    }

    /// Every file matching `query` (same rules as [`search`](Self::search)),
    /// for exact filtering. A query without words matches nothing; callers
    /// should treat a blank keyword filter as "no filter".
    pub fn matching_ids(&self, query: &str) -> Result<HashSet<u64>> {
        let Some(query) = self.query(query) else {
            return Ok(HashSet::new());
        };
        let searcher = self.reader.searcher();
        let docs = searcher.search(&query, &DocSetCollector)?;
        let mut ids = IdReader::new(&searcher);
        docs.into_iter().map(|addr| ids.get(addr)).collect()
    }

    /// Completions of `prefix` (its last word, lowercased) among filename and
    /// tag words and whole tags, most files first.
    pub fn suggest(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>> {
        let prefix = prefix.trim().to_lowercase();
        if prefix.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        // One word completes name and tag words as well as whole tags; several
        // words ("one s") can only be the start of a whole tag.
        let mut words = tokenize(&prefix);
        let word_prefix = if words.len() == 1 {
            words.pop().unwrap_or_default()
        } else {
            String::new()
        };
        let searcher = self.reader.searcher();
        // doc_freq counts deleted documents until segments merge: use it only
        // to pick candidates, then count live documents exactly.
        let mut approx: HashMap<String, u64> = HashMap::new();
        for segment in searcher.segment_readers() {
            for (field, p) in [
                (self.fields.filename, &word_prefix),
                (self.fields.tags, &word_prefix),
                (self.fields.tag_raw, &prefix),
            ] {
                if p.is_empty() {
                    continue;
                }
                let inverted = segment.inverted_index(field)?;
                let mut stream = inverted
                    .terms()
                    .range()
                    .ge(p.as_bytes())
                    .into_stream()
                    .map_err(tantivy::TantivyError::from)?;
                while stream.advance() {
                    let Ok(term) = std::str::from_utf8(stream.key()) else {
                        continue;
                    };
                    if !term.starts_with(p.as_str()) {
                        break;
                    }
                    *approx.entry(term.to_owned()).or_default() += u64::from(stream.value().doc_freq);
                }
            }
        }
        let mut candidates: Vec<(String, u64)> = approx.into_iter().collect();
        candidates.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        candidates.truncate(limit.saturating_mul(4).max(16));
        let mut out = Vec::with_capacity(candidates.len());
        for (term, _) in candidates {
            let clauses: Vec<(Occur, Box<dyn Query>)> =
                [self.fields.filename, self.fields.tags, self.fields.tag_raw]
                    .into_iter()
                    .map(|f| {
                        let q: Box<dyn Query> = Box::new(TermQuery::new(
                            Term::from_field_text(f, &term),
                            IndexRecordOption::Basic,
                        ));
                        (Occur::Should, q)
                    })
                    .collect();
            let doc_count = searcher.search(&BooleanQuery::new(clauses), &Count)? as u64;
            if doc_count > 0 {
                out.push(Suggestion { term, doc_count });
            }
        }
        out.sort_by(|a, b| b.doc_count.cmp(&a.doc_count).then_with(|| a.term.cmp(&b.term)));
        out.truncate(limit);
        Ok(out)
    }

    fn document(&self, record: &TextRecord) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::new();
        doc.add_u64(f.file_id, record.file_id);
        doc.add_text(f.filename, &record.filename);
        for tag in &record.tags {
            doc.add_text(f.tags, tag);
            let raw = tag.trim().to_lowercase();
            if !raw.is_empty() {
                doc.add_text(f.tag_raw, raw);
            }
        }
        doc
    }

    /// AND over the query's words; each word may match any field.
    fn query(&self, text: &str) -> Option<BooleanQuery> {
        let mut words = tokenize(text);
        let mut seen = HashSet::new();
        words.retain(|w| seen.insert(w.clone()));
        if words.is_empty() {
            return None;
        }
        let f = &self.fields;
        let clauses = words
            .iter()
            .map(|word| {
                let any_field: Vec<(Occur, Box<dyn Query>)> =
                    [(f.filename, FILENAME_BOOST), (f.tags, TAG_BOOST)]
                        .into_iter()
                        .map(|(field, boost)| {
                            let term = TermQuery::new(
                                Term::from_field_text(field, word),
                                IndexRecordOption::WithFreqs,
                            );
                            let q: Box<dyn Query> = Box::new(BoostQuery::new(Box::new(term), boost));
                            (Occur::Should, q)
                        })
                        .collect();
                let q: Box<dyn Query> = Box::new(BooleanQuery::new(any_field));
                (Occur::Must, q)
            })
            .collect();
        Some(BooleanQuery::new(clauses))
    }
}

/// Reads `file_id` from the fast field, one column per segment.
struct IdReader<'a> {
    searcher: &'a Searcher,
    columns: HashMap<u32, tantivy::columnar::Column<u64>>,
}

impl<'a> IdReader<'a> {
    fn new(searcher: &'a Searcher) -> Self {
        IdReader {
            searcher,
            columns: HashMap::new(),
        }
    }

    fn get(&mut self, addr: DocAddress) -> Result<u64> {
        let column = match self.columns.get(&addr.segment_ord) {
            Some(c) => c,
            None => {
                let c = self
                    .searcher
                    .segment_reader(addr.segment_ord)
                    .fast_fields()
                    .u64("file_id")?;
                self.columns.entry(addr.segment_ord).or_insert(c)
            }
        };
        column.first(addr.doc_id).ok_or_else(|| {
            IndexError::Text(tantivy::TantivyError::InternalError(
                "document without a file_id".into(),
            ))
        })
    }
}

/// Splits on anything that is not a letter or digit, between letters and
/// digits, and at camelCase humps (`HTTPServer` → `http`, `server`), then
/// lowercases: `KickDrum_Hard-01.wav` → kick, drum, hard, 01, wav.
pub fn tokenize(text: &str) -> Vec<String> {
    split_words(text).into_iter().map(|(_, _, w)| w).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Upper,
    /// Lowercase letters and letters without case (CJK, ...).
    Lower,
    Digit,
    Other,
}

fn class(c: char) -> Class {
    if c.is_uppercase() {
        Class::Upper
    } else if c.is_alphabetic() {
        Class::Lower
    } else if c.is_numeric() {
        Class::Digit
    } else {
        Class::Other
    }
}

/// (byte start, byte end, lowercased word) for each word.
fn split_words(text: &str) -> Vec<(usize, usize, String)> {
    let chars: Vec<(usize, char, Class)> = text.char_indices().map(|(i, c)| (i, c, class(c))).collect();
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    for (n, &(i, _, cls)) in chars.iter().enumerate() {
        let prev = n.checked_sub(1).map(|p| chars[p].2);
        let next = chars.get(n + 1).map(|c| c.2);
        let boundary = match (prev, cls) {
            (_, Class::Other) => true,
            (None | Some(Class::Other), _) => true,
            (Some(Class::Digit), Class::Upper | Class::Lower)
            | (Some(Class::Upper | Class::Lower), Class::Digit) => true,
            (Some(Class::Lower), Class::Upper) => true,
            // The last capital of a run starts the next word: "HTTPServer".
            (Some(Class::Upper), Class::Upper) => next == Some(Class::Lower),
            _ => false,
        };
        if boundary {
            if let Some(s) = start.take() {
                words.push((chars[s].0, i, text[chars[s].0..i].to_lowercase()));
            }
            if cls != Class::Other {
                start = Some(n);
            }
        }
    }
    if let Some(s) = start {
        words.push((chars[s].0, text.len(), text[chars[s].0..].to_lowercase()));
    }
    words
}

/// tantivy adapter for [`tokenize`].
#[derive(Clone, Copy, Debug, Default)]
pub struct WordSplitter;

/// Tokens are computed up front: names and tags are short.
pub struct WordStream {
    tokens: Vec<Token>,
    next: usize,
    /// Returned by `token()` outside the stream, where tantivy never looks.
    outside: Token,
}

impl Tokenizer for WordSplitter {
    type TokenStream<'a> = WordStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        let tokens = split_words(text)
            .into_iter()
            .enumerate()
            .map(|(position, (offset_from, offset_to, text))| Token {
                offset_from,
                offset_to,
                position,
                text,
                position_length: 1,
            })
            .collect();
        WordStream {
            tokens,
            next: 0,
            outside: Token::default(),
        }
    }
}

impl TokenStream for WordStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        self.next
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .unwrap_or(&self.outside)
    }

    fn token_mut(&mut self) -> &mut Token {
        match self.next.checked_sub(1) {
            Some(i) if i < self.tokens.len() => &mut self.tokens[i],
            _ => &mut self.outside,
        }
    }
}

#[cfg(test)]
mod tests;
