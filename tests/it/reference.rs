//! The API reference, `proto/API.md`, generated from the proto comments in
//! the descriptor set the server serves through reflection. The test fails
//! when the committed file is stale; `TRAUM_BLESS=1` rewrites it.
//!
//! Method comments end with an `Errors:` list (`- CODE: when`); the test
//! also fails when a method has none or names a code gRPC does not have,
//! so every method documents what it can answer.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet, field_descriptor_proto};
use traum_server::auth::{Access, access_of_rpc};

const REFERENCE: &str = "proto/API.md";

/// Status codes by their canonical names (google.rpc.Code).
const CODES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

const PREAMBLE: &str = "\
# Traum API reference: `traum.v1`

Generated from the comments in [`traum/v1/*.proto`](traum/v1) by
`TRAUM_BLESS=1 cargo test -p traum-tests --test it reference`; the test suite
fails when this file is stale, so edit the proto comments, not this file.
[README.md](README.md) explains the lint and compatibility rules.

The server also speaks `grpc.health.v1.Health` (`Check` needs no credential,
so that probes work; `Watch` needs `read`) and gRPC reflection (`read`).

## Calling conventions

- **Credentials.** With `--auth required`, send `authorization: Bearer <API key
  or JWT>` (or `x-api-key: <key>`). Each method below names the role it needs;
  `admin` includes `write`, which includes `read`.
- **Paging.** List and search methods take a page size (0 means the default)
  and return `next_page_token`, empty on the last page; pass it back unchanged.
- **Ids** are UUIDs; a malformed id is `INVALID_ARGUMENT`, an unknown one
  `NOT_FOUND`.

## Errors every method can return

| Code | When |
|---|---|
| `UNAUTHENTICATED` | Auth is required and the call has no credential, or an unknown, revoked, expired or forged one. |
| `PERMISSION_DENIED` | The credential is valid but its role is below the one the method needs; the message names that role. |
| `RESOURCE_EXHAUSTED` | The caller is over a rate or concurrency limit (searches 50/s, uploads 10/s and 16 at once per identity by default). Carries `google.rpc.RetryInfo` and a `retry-after` header in whole seconds. |
| `UNAVAILABLE` | The server is shutting down, or a part it needs is not ready (e.g. the search index is still loading). |
| `INTERNAL` | A failure inside the server. The message and the `x-request-id` header carry a request id; the server log has the error under it. Nothing else is disclosed. |
| `DEADLINE_EXCEEDED` | The client's deadline passed, or (uploads) the stream sent nothing for longer than `--upload-idle-timeout`. |
| `CANCELLED` | The client cancelled the call. |

## Error details

Errors a client can act on carry `google.rpc` details in the standard
`grpc-status-details-bin` trailer (a `google.rpc.Status`); every gRPC library
can decode them (Rust: `tonic_types::StatusExt`, Python:
`grpc_status.rpc_status.from_call`, TypeScript: `ConnectError.findDetails`).

| Code | Detail | Content |
|---|---|---|
| `INVALID_ARGUMENT` | `google.rpc.BadRequest` | One `field_violations` entry: `field` is the path of the offending request field in proto names (`query`, `options.limit`, `filters.min_bpm`, `header.filename`), `description` the same text as the message. Absent when the problem is not one field (e.g. undecodable audio). |
| `NOT_FOUND` | `google.rpc.ResourceInfo` | `resource_type` is the message of the missing entity (`traum.v1.File`, `traum.v1.Collection`, `traum.v1.Job`, `traum.v1.UploadSession`, `traum.v1.ApiKey`), `resource_name` the id asked for. |
| `RESOURCE_EXHAUSTED` (rate limits) | `google.rpc.RetryInfo` | `retry_delay`: how long to wait before retrying. |
";

/// A proto comment: its text, and the `Errors:` list split off.
struct Comment {
    text: String,
    /// `Some` once the comment has an `Errors:` section; a section with a
    /// sentence after the colon and no items says the method has no errors
    /// of its own.
    errors: Option<Vec<(String, String)>>,
}

fn parse_comment(raw: &str) -> Comment {
    let lines: Vec<&str> = raw.lines().map(str::trim_end).collect();
    let Some(split) = lines.iter().position(|l| l.trim().starts_with("Errors:")) else {
        return Comment {
            text: lines.join("\n").trim().to_owned(),
            errors: None,
        };
    };
    let (text, errors) = (&lines[..split], &lines[split + 1..]);
    let note = lines[split].trim().trim_start_matches("Errors:").trim();
    let mut parsed: Vec<(String, String)> = Vec::new();
    for line in errors {
        let line = line.trim();
        if let Some(item) = line.strip_prefix("- ") {
            let (code, when) = item.split_once(':').unwrap_or((item, ""));
            parsed.push((code.trim().to_owned(), when.trim().to_owned()));
        } else if let Some(last) = parsed.last_mut()
            && !line.is_empty()
        {
            // A wrapped line continues the previous item.
            last.1.push(' ');
            last.1.push_str(line);
        }
    }
    Comment {
        text: text.join("\n").trim().to_owned(),
        // "Errors:" alone must be followed by items; with a note, by none.
        errors: (note.is_empty() != parsed.is_empty()).then_some(parsed),
    }
}

/// One line for a table cell: paragraphs joined, pipes escaped.
fn cell(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.is_empty() {
        "—".to_owned()
    } else {
        joined.replace('|', "\\|")
    }
}

/// Comments by source path (see `SourceCodeInfo.Location.path`).
struct Comments(BTreeMap<Vec<i32>, String>);

impl Comments {
    fn get(&self, path: &[i32]) -> &str {
        self.0.get(path).map_or("", String::as_str)
    }
}

fn link(type_name: &str) -> String {
    let name = type_name.trim_start_matches('.');
    if name.starts_with("traum.") {
        let short = name.rsplit('.').next().unwrap_or(name);
        format!("[`{short}`](#{})", anchor(name))
    } else {
        format!("`{name}`")
    }
}

fn anchor(full_name: &str) -> String {
    full_name.to_ascii_lowercase().replace('.', "-")
}

fn scalar(kind: field_descriptor_proto::Type) -> &'static str {
    use field_descriptor_proto::Type;
    match kind {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Group | Type::Message | Type::Enum => "",
    }
}

struct Writer<'a> {
    out: String,
    comments: &'a Comments,
    package: String,
    /// Map entry messages by full name: (key type, value type).
    maps: BTreeMap<String, (String, String)>,
    problems: Vec<String>,
}

impl Writer<'_> {
    fn field_type(&self, field: &prost_types::FieldDescriptorProto) -> String {
        use field_descriptor_proto::{Label, Type};
        let kind = field.r#type();
        let base = match kind {
            Type::Message | Type::Enum | Type::Group => {
                if let Some((k, v)) = self.maps.get(field.type_name()) {
                    return format!("map<{k}, {v}>");
                }
                link(field.type_name())
            }
            other => format!("`{}`", scalar(other)),
        };
        if field.label() == Label::Repeated {
            format!("repeated {base}")
        } else if field.proto3_optional() {
            format!("optional {base}")
        } else {
            base
        }
    }

    fn message(&mut self, message: &DescriptorProto, prefix: &str, path: &[i32]) {
        let full = format!("{prefix}.{}", message.name());
        if message
            .options
            .as_ref()
            .and_then(|o| o.map_entry)
            .unwrap_or(false)
        {
            return;
        }
        let _ = writeln!(self.out, "### <a id=\"{}\"></a>`{full}`\n", anchor(&full));
        let comment = self.comments.get(path).trim().to_owned();
        if comment.is_empty() {
            self.problems.push(format!("message {full} has no comment"));
        } else {
            let _ = writeln!(self.out, "{comment}\n");
        }
        if !message.field.is_empty() {
            let _ = writeln!(self.out, "| Field | Type | Description |\n|---|---|---|");
            for (i, field) in message.field.iter().enumerate() {
                let mut field_path = path.to_vec();
                field_path.extend([2, i as i32]);
                let mut text = cell(self.comments.get(&field_path));
                if let Some(index) = field.oneof_index
                    && !field.proto3_optional()
                    && let Some(oneof) = message.oneof_decl.get(index as usize)
                {
                    text = format!("One of `{}`. {text}", oneof.name());
                }
                let _ = writeln!(
                    self.out,
                    "| `{}` = {} | {} | {text} |",
                    field.name(),
                    field.number(),
                    self.field_type(field)
                );
            }
            self.out.push('\n');
        }
        for (i, nested) in message.nested_type.iter().enumerate() {
            let mut nested_path = path.to_vec();
            nested_path.extend([3, i as i32]);
            self.message(nested, &full, &nested_path);
        }
        for (i, nested) in message.enum_type.iter().enumerate() {
            let mut nested_path = path.to_vec();
            nested_path.extend([4, i as i32]);
            self.enumeration(nested, &full, &nested_path);
        }
    }

    fn enumeration(&mut self, enumeration: &EnumDescriptorProto, prefix: &str, path: &[i32]) {
        let full = format!("{prefix}.{}", enumeration.name());
        let _ = writeln!(self.out, "### <a id=\"{}\"></a>`{full}`\n", anchor(&full));
        let comment = self.comments.get(path).trim().to_owned();
        if !comment.is_empty() {
            let _ = writeln!(self.out, "{comment}\n");
        }
        let _ = writeln!(self.out, "| Value | Number | Description |\n|---|---|---|");
        for (i, value) in enumeration.value.iter().enumerate() {
            let mut value_path = path.to_vec();
            value_path.extend([2, i as i32]);
            let _ = writeln!(
                self.out,
                "| `{}` | {} | {} |",
                value.name(),
                value.number(),
                cell(self.comments.get(&value_path))
            );
        }
        self.out.push('\n');
    }
}

fn collect_maps(message: &DescriptorProto, prefix: &str, maps: &mut BTreeMap<String, (String, String)>) {
    let full = format!("{prefix}.{}", message.name());
    if message
        .options
        .as_ref()
        .and_then(|o| o.map_entry)
        .unwrap_or(false)
    {
        let type_of = |f: &prost_types::FieldDescriptorProto| match f.r#type() {
            field_descriptor_proto::Type::Message | field_descriptor_proto::Type::Enum => link(f.type_name()),
            other => format!("`{}`", scalar(other)),
        };
        if let [key, value] = message.field.as_slice() {
            maps.insert(full.clone(), (type_of(key), type_of(value)));
        }
    }
    for nested in &message.nested_type {
        collect_maps(nested, &full, maps);
    }
}

/// The reference as Markdown, and what is missing from the comments.
fn render() -> (String, Vec<String>) {
    let set =
        FileDescriptorSet::decode(traum_proto::FILE_DESCRIPTOR_SET).expect("the descriptor set decodes");
    let mut files: Vec<_> = set.file.iter().filter(|f| f.package() == "traum.v1").collect();
    files.sort_by(|a, b| a.name().cmp(b.name()));
    let mut maps = BTreeMap::new();
    for file in &files {
        for message in &file.message_type {
            collect_maps(message, &format!(".{}", file.package()), &mut maps);
        }
    }
    let mut out = String::from(PREAMBLE);
    let mut problems = Vec::new();

    out.push_str("\n## Services\n\n");
    for file in &files {
        let comments = comments_of(file);
        for (s, service) in file.service.iter().enumerate() {
            let full = format!("{}.{}", file.package(), service.name());
            let _ = writeln!(out, "### <a id=\"{}\"></a>`{full}`\n", anchor(&full));
            let _ = writeln!(out, "Defined in [`{}`]({}).\n", file.name(), file.name());
            let service_comment = comments.get(&[6, s as i32]).trim();
            if service_comment.is_empty() {
                problems.push(format!("service {full} has no comment"));
            } else {
                let _ = writeln!(out, "{service_comment}\n");
            }
            let _ = writeln!(out, "| Method | Request | Response | Role |\n|---|---|---|---|");
            for method in &service.method {
                let role = role_of(&format!("/{full}/{}", method.name()));
                let _ = writeln!(
                    out,
                    "| [`{}`](#{}) | {}{} | {}{} | {role} |",
                    method.name(),
                    anchor(&format!("{full}.{}", method.name())),
                    if method.client_streaming() { "stream " } else { "" },
                    link(method.input_type()),
                    if method.server_streaming() { "stream " } else { "" },
                    link(method.output_type()),
                );
            }
            out.push('\n');
            for (m, method) in service.method.iter().enumerate() {
                let method_full = format!("{full}.{}", method.name());
                let path = format!("/{full}/{}", method.name());
                let _ = writeln!(
                    out,
                    "#### <a id=\"{}\"></a>`{}`\n",
                    anchor(&method_full),
                    method.name()
                );
                let _ = writeln!(
                    out,
                    "`rpc {}({}{}) returns ({}{})` · role: {}\n",
                    method.name(),
                    if method.client_streaming() { "stream " } else { "" },
                    method.input_type().trim_start_matches('.'),
                    if method.server_streaming() { "stream " } else { "" },
                    method.output_type().trim_start_matches('.'),
                    role_of(&path)
                );
                let comment = parse_comment(comments.get(&[6, s as i32, 2, m as i32]));
                if comment.text.is_empty() {
                    problems.push(format!("{method_full} has no comment"));
                } else {
                    let _ = writeln!(out, "{}\n", comment.text);
                }
                match &comment.errors {
                    None => problems.push(format!(
                        "{method_full} has no `Errors:` list (or `Errors: only those every method can return.`)"
                    )),
                    Some(errors) if errors.is_empty() => {
                        let _ = writeln!(out, "Errors: only [those every method can return](#errors-every-method-can-return).\n");
                    }
                    Some(errors) => {
                        let _ = writeln!(out, "| Error | When |\n|---|---|");
                        for (code, when) in errors {
                            if !CODES.contains(&code.as_str()) {
                                problems.push(format!("{method_full} lists `{code}`, which is no gRPC status code"));
                            }
                            let _ = writeln!(out, "| `{code}` | {} |", cell(when));
                        }
                        out.push('\n');
                    }
                }
            }
        }
    }

    out.push_str("## Messages and enums\n\n");
    for file in &files {
        let comments = comments_of(file);
        let mut writer = Writer {
            out: String::new(),
            comments: &comments,
            package: file.package().to_owned(),
            maps: maps.clone(),
            problems: Vec::new(),
        };
        let _ = writeln!(writer.out, "From [`{}`]({}).\n", file.name(), file.name());
        for (i, message) in file.message_type.iter().enumerate() {
            let prefix = writer.package.clone();
            writer.message(message, &prefix, &[4, i as i32]);
        }
        for (i, enumeration) in file.enum_type.iter().enumerate() {
            let prefix = writer.package.clone();
            writer.enumeration(enumeration, &prefix, &[5, i as i32]);
        }
        out.push_str(&writer.out);
        problems.extend(writer.problems);
    }
    (out.trim_end().to_owned() + "\n", problems)
}

fn comments_of(file: &prost_types::FileDescriptorProto) -> Comments {
    let mut map = BTreeMap::new();
    for location in file.source_code_info.iter().flat_map(|info| &info.location) {
        if let Some(text) = &location.leading_comments {
            // `// text` leaves one space before each line's text.
            let lines: Vec<&str> = text
                .lines()
                .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
                .collect();
            map.insert(location.path.clone(), lines.join("\n"));
        }
    }
    Comments(map)
}

fn role_of(path: &str) -> String {
    match access_of_rpc(path) {
        Access::Open => "none".to_owned(),
        Access::Role(role) => format!("`{role}`"),
    }
}

fn reference_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(REFERENCE)
}

#[test]
fn api_reference_is_complete_and_fresh() {
    let (rendered, problems) = render();
    assert!(
        problems.is_empty(),
        "the proto comments leave the reference incomplete:\n  {}",
        problems.join("\n  ")
    );
    let path = reference_path();
    if std::env::var_os("TRAUM_BLESS").is_some() {
        std::fs::write(&path, &rendered).expect("write proto/API.md");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "{REFERENCE} is stale: regenerate it with `TRAUM_BLESS=1 cargo test -p traum-tests --test it reference` and commit it"
    );
}

#[test]
fn the_errors_list_is_split_from_the_comment() {
    let comment = parse_comment(
        "Deletes a file.\n\nErrors:\n- NOT_FOUND: no file has\n  that id.\n- INVALID_ARGUMENT: `file_id` is no UUID.\n",
    );
    assert_eq!(comment.text, "Deletes a file.");
    assert_eq!(
        comment.errors,
        Some(vec![
            ("NOT_FOUND".to_owned(), "no file has that id.".to_owned()),
            ("INVALID_ARGUMENT".to_owned(), "`file_id` is no UUID.".to_owned()),
        ])
    );
    let none = parse_comment("Returns totals.\n\nErrors: only those every method can return.\n");
    assert_eq!(none.errors, Some(vec![]));
    // A heading without items, or a note with items, is no valid list.
    assert_eq!(parse_comment("Returns totals.\nErrors:\n").errors, None);
    assert_eq!(
        parse_comment("Lists.\nErrors: none.\n- NOT_FOUND: x\n").errors,
        None
    );
    assert_eq!(parse_comment("Lists keys.\n").errors, None);
}

#[test]
fn every_method_of_the_contract_is_in_the_reference() {
    let (rendered, _) = render();
    let set =
        FileDescriptorSet::decode(traum_proto::FILE_DESCRIPTOR_SET).expect("the descriptor set decodes");
    let mut methods = 0;
    for file in set.file.iter().filter(|f| f.package() == "traum.v1") {
        for service in &file.service {
            for method in &service.method {
                methods += 1;
                let heading = format!("`{}`\n", method.name());
                assert!(
                    rendered.contains(&heading),
                    "{} missing from the reference",
                    method.name()
                );
            }
        }
    }
    assert!(
        methods >= 30,
        "only {methods} methods found: is the descriptor set complete?"
    );
}
