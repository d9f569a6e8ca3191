//! Validation and normalisation of user-supplied values. Every error message
//! names the field and the rule so a person can fix the request.

use crate::domain::SuggestedTagFilter;
use crate::error::{Error, Result};

/// Longest accepted filename, in bytes.
pub const MAX_FILENAME_BYTES: usize = 255;
/// Longest accepted tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// Most tags one file may carry.
pub const MAX_TAGS: usize = 64;

/// Checks a display filename. Filenames are metadata and never touch the
/// file system, but separators are refused so no client can smuggle a path.
pub fn filename(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::InvalidArgument("filename must not be empty".into()));
    }
    if name.len() > MAX_FILENAME_BYTES {
        return Err(Error::InvalidArgument(format!(
            "filename is {} bytes long; the limit is {MAX_FILENAME_BYTES}",
            name.len()
        )));
    }
    if name.contains(['/', '\\']) {
        return Err(Error::InvalidArgument(format!(
            "filename `{name}` contains a path separator; send the base name only"
        )));
    }
    if name.chars().any(char::is_control) || name == "." || name == ".." {
        return Err(Error::InvalidArgument(
            "filename contains control characters or is `.`/`..`".into(),
        ));
    }
    Ok(name.to_owned())
}

/// Longest collection name, in characters.
pub const MAX_COLLECTION_NAME_CHARS: usize = 100;
/// Most files one collection may hold.
pub const MAX_COLLECTION_FILES: usize = 10_000;

/// Checks a collection name: trimmed, 1 to 100 characters, printable.
pub fn collection_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Error::InvalidArgument("collection name must not be empty".into()));
    }
    if name.chars().count() > MAX_COLLECTION_NAME_CHARS {
        return Err(Error::InvalidArgument(format!(
            "collection name is longer than {MAX_COLLECTION_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(
            "collection name contains control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// Normalises one tag: trimmed, lower-cased, bounded, printable.
pub fn tag(raw: &str) -> Result<String> {
    let tag = raw.trim().to_lowercase();
    if tag.is_empty() {
        return Err(Error::InvalidArgument("tags must not be empty".into()));
    }
    if tag.chars().count() > MAX_TAG_CHARS {
        return Err(Error::InvalidArgument(format!(
            "tag `{tag}` is longer than {MAX_TAG_CHARS} characters"
        )));
    }
    if tag.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "tag {tag:?} contains control characters"
        )));
    }
    Ok(tag)
}

/// Normalises a tag list: each tag as [`tag`], duplicates dropped, sorted.
pub fn tags(raw: &[String]) -> Result<Vec<String>> {
    let mut tags = raw.iter().map(|t| tag(t)).collect::<Result<Vec<_>>>()?;
    tags.sort();
    tags.dedup();
    if tags.len() > MAX_TAGS {
        return Err(Error::InvalidArgument(format!(
            "{} tags given; a file may carry at most {MAX_TAGS}",
            tags.len()
        )));
    }
    Ok(tags)
}

/// Most suggested-tag conditions in one filter.
pub const MAX_SUGGESTED_FILTERS: usize = 16;

/// Normalises suggested-tag conditions: vocabulary names lower-cased, labels
/// normalised like tags; each condition needs a vocabulary and a label.
pub fn suggested_filters(raw: &[SuggestedTagFilter]) -> Result<Vec<SuggestedTagFilter>> {
    if raw.len() > MAX_SUGGESTED_FILTERS {
        return Err(Error::InvalidArgument(format!(
            "{} suggested-tag conditions given; at most {MAX_SUGGESTED_FILTERS} are allowed",
            raw.len()
        )));
    }
    raw.iter()
        .enumerate()
        .map(|(index, condition)| {
            let vocabulary = condition.vocabulary.trim().to_lowercase();
            if vocabulary.is_empty() {
                return Err(Error::invalid_field(
                    format!("{index}.vocabulary"),
                    "a suggested-tag condition needs a vocabulary, e.g. `genre`",
                ));
            }
            if condition.labels.is_empty() {
                return Err(Error::invalid_field(
                    format!("{index}.labels"),
                    format!("the condition on vocabulary `{vocabulary}` needs at least one label"),
                ));
            }
            let labels = tags(&condition.labels).map_err(|e| e.at(&format!("{index}.labels")))?;
            Ok(SuggestedTagFilter { vocabulary, labels })
        })
        .collect()
}

/// Checks a hex SHA-256 and lower-cases it.
pub fn sha256(raw: &str) -> Result<String> {
    let digest = raw.trim().to_ascii_lowercase();
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidArgument(format!(
            "sha256 `{raw}` must be 64 hexadecimal digits"
        )));
    }
    Ok(digest)
}

/// Checks an identifier is a UUID, so a typo gets INVALID_ARGUMENT rather
/// than NOT_FOUND.
pub fn id(kind: &str, raw: &str) -> Result<String> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| {
            Error::invalid_field(
                kind,
                format!("{kind} `{raw}` is not a valid id (expected a UUID)"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_tags() {
        let raw = vec![" Drums".to_owned(), "drums".to_owned(), "LOFI ".to_owned()];
        assert_eq!(tags(&raw).unwrap(), vec!["drums", "lofi"]);
        assert!(tag("   ").is_err());
        assert!(tag(&"x".repeat(65)).is_err());
    }

    #[test]
    fn refuses_paths_as_filenames() {
        assert!(filename("../../etc/passwd").is_err());
        assert!(filename("a\\b.wav").is_err());
        assert_eq!(filename("  Kick 01.wav ").unwrap(), "Kick 01.wav");
    }

    #[test]
    fn checks_digests_and_ids() {
        assert!(sha256(&"A".repeat(64)).is_ok());
        assert!(sha256("abc").is_err());
        assert!(id("file_id", "nope").is_err());
    }
}
