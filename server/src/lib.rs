//! Traum server: gRPC platform for semantic audio search.
//!
//! [`run`] serves on a bound listener until a shutdown future completes; the
//! `traum-server` binary is a thin wrapper around it.

pub mod audio;
pub mod blob;
pub mod commands;
pub mod config;
pub mod embed;
pub mod error;
mod grpc;
pub mod index;
pub mod ingest;
pub mod jobs;
pub mod model;
pub mod search;
mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod usage;
pub mod validate;

pub use self::config::{Config, ConfigArgs, EXIT_CONFIG};
pub use self::grpc::SEARCH_NOT_READY;
pub use self::server::{StartError, run};
