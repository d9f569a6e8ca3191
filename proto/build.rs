//! Compiles `traum/v1/*.proto` with protox (pure Rust, no system `protoc`)
//! and writes a descriptor set for gRPC reflection.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "traum/v1/audio.proto",
    "traum/v1/search.proto",
    "traum/v1/analytics.proto",
    "traum/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let encoded = prost::Message::encode_to_vec(&descriptors);
    std::fs::write(out_dir.join("traum_descriptor.bin"), encoded)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Audio chunks as `bytes::Bytes`: no copy between the wire and the
        // blob writer.
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
