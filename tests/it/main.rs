//! End-to-end tests of Traum: one binary, the real server on loopback,
//! driven through the generated gRPC clients and the real CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod analytics;
mod auth;
mod backup;
mod cli;
mod collections;
mod details;
mod duplicates;
mod envoy;
mod files;
mod hostile;
mod platform;
mod reference;
mod replicas;
mod s3;
mod search;
mod tls;
mod upload;
mod web;
