//! Traum server: gRPC platform for semantic audio search.
//!
//! [`run`] serves on a bound listener until a shutdown future completes; the
//! `traum-server` binary is a thin wrapper around it. The audio, index and
//! model work lives in the crates below (`traum-audio`, `traum-index`,
//! `traum-clap`); this crate is the service around them.

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod blob;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod domain;
pub mod duplicates;
pub mod embed;
pub mod error;
mod grpc;
pub mod http;
pub mod ingest;
mod isolation;
pub mod jobs;
pub mod library;
pub mod search;
mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod usage;
pub mod validate;
mod web;
pub mod zero_shot;

pub use self::config::{Config, ConfigArgs, EXIT_CONFIG};
pub use self::server::{StartError, run};
