//! Embeds the web app's built files (`client/web/dist`, committed, so
//! building the server needs no Node) into the binary: each with its
//! content type, an ETag from its bytes and, where it pays, a gzip copy
//! compressed here once instead of on every request.

use std::error::Error;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> Result<()> {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or("cargo sets CARGO_MANIFEST_DIR")?);
    let dist = manifest.join("../client/web/dist");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo sets OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", dist.display());

    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &mut files)?;
    }
    files.sort();

    let mut table = String::from("static ASSETS: &[Asset] = &[\n");
    for (index, path) in files.iter().enumerate() {
        println!("cargo:rerun-if-changed={}", path.display());
        let bytes = std::fs::read(path).map_err(|err| format!("read {}: {err}", path.display()))?;
        let relative = path.strip_prefix(&dist)?;
        let url = format!(
            "/{}",
            relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        );
        let content_type = content_type(path);
        let gzip = if compressible(content_type) {
            Some(gzip(&bytes)?).filter(|compressed| compressed.len() + 64 < bytes.len())
        } else {
            None
        };
        let gzip_expr = match gzip {
            Some(compressed) => {
                let name = format!("asset{index}.gz");
                std::fs::write(out.join(&name), compressed)?;
                format!("Some(include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}\")))")
            }
            None => "None".to_owned(),
        };
        writeln!(
            table,
            "    Asset {{ path: {url:?}, content_type: {content_type:?}, etag: \"\\\"{:016x}\\\"\", raw: include_bytes!({:?}), gzip: {gzip_expr} }},",
            fnv1a(&bytes),
            path.canonicalize()?,
        )?;
    }
    table.push_str("];\n");
    std::fs::write(out.join("web_assets.rs"), table)?;
    Ok(())
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|err| format!("read {}: {err}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/")
        || content_type == "image/svg+xml"
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// A content hash for ETags: only has to change when the bytes do.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
