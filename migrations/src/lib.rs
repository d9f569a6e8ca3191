//! Schema migrations of the Traum server, applied in order at start-up.
//! Every migration has an `up` and a `down`.

// `MigrationTrait` declares `&SchemaManager` with an elided lifetime, and an
// impl must match it exactly.
#![allow(elided_lifetimes_in_paths)]

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_library;
mod m20261121_000002_usage;
mod m20261121_000003_descriptors;
mod m20261121_000004_embeddings;
mod m20261201_000005_waveforms;
mod m20261201_000006_collections;
mod m20261201_000007_api_keys;
mod m20261201_000008_audit_events;
mod m20261201_000009_suggested_tags;
mod m20261201_000010_tempo_alternatives;
mod m20261202_000011_fingerprints;
mod m20261202_000012_job_leases;
mod m20261202_000013_index_feed;

/// Runs Traum's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_library::Migration),
            Box::new(m20261121_000002_usage::Migration),
            Box::new(m20261121_000003_descriptors::Migration),
            Box::new(m20261121_000004_embeddings::Migration),
            Box::new(m20261201_000005_waveforms::Migration),
            Box::new(m20261201_000006_collections::Migration),
            Box::new(m20261201_000007_api_keys::Migration),
            Box::new(m20261201_000008_audit_events::Migration),
            Box::new(m20261201_000009_suggested_tags::Migration),
            Box::new(m20261201_000010_tempo_alternatives::Migration),
            Box::new(m20261202_000011_fingerprints::Migration),
            Box::new(m20261202_000012_job_leases::Migration),
            Box::new(m20261202_000013_index_feed::Migration),
        ]
    }
}
