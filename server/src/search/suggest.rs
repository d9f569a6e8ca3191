//! `Suggest`: completions of a prefix from tags, filename words and past
//! queries.

use std::collections::HashSet;
use std::time::Duration;

use super::Search;
use crate::error::Result;

/// How far back past queries count for suggestions.
const SUGGEST_HISTORY: Duration = Duration::from_secs(90 * 24 * 3600);

/// Where a suggestion comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuggestionSource {
    Tag,
    Filename,
    Query,
}

/// A completion for `Suggest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub text: String,
    pub source: SuggestionSource,
    /// Files with the term, or times the query was searched.
    pub count: u64,
}

impl Search {
    /// Completions of a prefix, most frequent first.
    pub async fn suggest(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>> {
        let prefix = super::checked_text("prefix", prefix)?;
        // Queries recorded moments ago are still in the usage batch.
        self.inner.usage.flush().await;
        let since = chrono::Utc::now().timestamp_millis() - SUGGEST_HISTORY.as_millis() as i64;
        let past = self.inner.store.past_queries(prefix, since, limit).await?;
        let terms = self.inner.keywords.terms(prefix, limit).await?;
        let tags: HashSet<String> = self.inner.store.all_tags().await?.into_iter().collect();
        let suggestions = terms
            .into_iter()
            .map(|term| Suggestion {
                source: if tags.contains(&term.term) {
                    SuggestionSource::Tag
                } else {
                    SuggestionSource::Filename
                },
                text: term.term,
                count: term.doc_count,
            })
            .chain(past.into_iter().map(|(text, count)| Suggestion {
                text,
                source: SuggestionSource::Query,
                count,
            }))
            .collect();
        Ok(merge(suggestions, limit))
    }
}

/// Most frequent first (then alphabetical), each text once, at most `limit`.
fn merge(mut suggestions: Vec<Suggestion>, limit: usize) -> Vec<Suggestion> {
    suggestions.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.text.cmp(&b.text)));
    suggestions.dedup_by(|a, b| a.text == b.text);
    suggestions.truncate(limit);
    suggestions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suggestion(text: &str, source: SuggestionSource, count: u64) -> Suggestion {
        Suggestion {
            text: text.into(),
            source,
            count,
        }
    }

    #[test]
    fn the_most_frequent_come_first_and_each_text_once() {
        let merged = merge(
            vec![
                suggestion("kick", SuggestionSource::Tag, 3),
                suggestion("kit", SuggestionSource::Filename, 1),
                suggestion("kick", SuggestionSource::Query, 3),
                suggestion("kicks", SuggestionSource::Query, 5),
            ],
            2,
        );
        assert_eq!(
            merged,
            vec![
                suggestion("kicks", SuggestionSource::Query, 5),
                suggestion("kick", SuggestionSource::Tag, 3)
            ]
        );
    }
}
