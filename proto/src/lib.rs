//! Generated protobuf types and gRPC stubs of the Traum API (`traum.v1`).

#![allow(clippy::all, clippy::pedantic, unused_qualifications)]

/// Package `traum.v1`.
pub mod v1 {
    tonic::include_proto!("traum.v1");
}

/// Encoded `FileDescriptorSet` of `traum.v1` (for gRPC reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/traum_descriptor.bin"));

/// Fully-qualified service names, as used by health checks and reflection.
pub mod service_names {
    pub const AUDIO: &str = "traum.v1.AudioService";
    pub const SEARCH: &str = "traum.v1.SearchService";
    pub const ANALYTICS: &str = "traum.v1.AnalyticsService";
    pub const ADMIN: &str = "traum.v1.AdminService";
}
