//! sea-orm entities, one module per table (see `traum-migration` for the
//! schema). Rows serialise to JSON for backups, the same on SQLite and
//! PostgreSQL; binary columns as hex.

/// A binary column as a hex string: a JSON array of numbers would be four
/// times the size.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

mod hex_bytes_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, serializer: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_some(&hex::encode(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| hex::decode(text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

pub mod blob {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "blobs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub sha256: String,
        pub size_bytes: i64,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod file {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "files")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub filename: String,
        pub sha256: String,
        pub format: String,
        pub size_bytes: i64,
        pub state: String,
        pub latest_job_id: Option<String>,
        pub error: Option<String>,
        pub duration_seconds: Option<f64>,
        pub sample_rate_hz: Option<i32>,
        pub channels: Option<i32>,
        pub bits_per_sample: Option<i32>,
        pub codec: Option<String>,
        pub bitrate_bps: Option<i64>,
        pub frames: Option<i64>,
        pub peak_dbfs: Option<f64>,
        pub loudness_lufs: Option<f64>,
        pub rms_dbfs: Option<f64>,
        pub spectral_centroid_hz: Option<f64>,
        pub zero_crossing_rate: Option<f64>,
        pub silence_ratio: Option<f64>,
        pub bpm: Option<f64>,
        pub bpm_confidence: Option<f64>,
        pub bpm_half_time: Option<f64>,
        pub bpm_half_time_score: Option<f64>,
        pub bpm_double_time: Option<f64>,
        pub bpm_double_time_score: Option<f64>,
        pub key_pitch_class: Option<i32>,
        pub key_mode: Option<String>,
        pub key_confidence: Option<f64>,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod file_tag {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "file_tags")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub file_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tag: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod job {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "jobs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub file_id: String,
        pub state: String,
        pub stage: String,
        pub progress: f64,
        pub stage_progress: f64,
        pub message: String,
        pub error: Option<String>,
        pub attempts: i32,
        /// JSON array of strings.
        pub warnings: String,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
        pub started_at: Option<ChronoDateTimeUtc>,
        pub finished_at: Option<ChronoDateTimeUtc>,
        /// The replica that claimed the job last.
        pub owner: Option<String>,
        /// Until when the owner's claim holds; set only while running.
        pub lease_expires_at: Option<ChronoDateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod cluster_lease {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "cluster_leases")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub holder: String,
        pub expires_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod upload {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "uploads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub filename: String,
        /// JSON array of normalised tags.
        pub tags: String,
        pub declared_size: Option<i64>,
        pub declared_sha256: Option<String>,
        pub received_bytes: i64,
        pub created_at: ChronoDateTimeUtc,
        pub expires_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod usage_event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "usage_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at_ms: i64,
        pub kind: String,
        pub method: String,
        pub code: i32,
        pub latency_ms: f64,
        pub query: Option<String>,
        pub upload_bytes: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod embedding {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "embeddings")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub file_id: String,
        pub model_id: String,
        /// `None` for the pooled whole-file vector.
        pub window_index: Option<i32>,
        pub start_seconds: f64,
        pub end_seconds: f64,
        /// Little-endian f32s.
        #[serde(with = "super::hex_bytes")]
        pub vector: Vec<u8>,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod waveform {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "waveforms")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub file_id: String,
        pub sample_rate_hz: i32,
        pub frames: i64,
        pub overview_samples_per_pair: i32,
        /// Interleaved min, max as signed bytes.
        #[serde(with = "super::hex_bytes")]
        pub overview: Vec<u8>,
        pub detail_samples_per_pair: Option<i32>,
        #[serde(with = "super::hex_bytes_opt")]
        pub detail: Option<Vec<u8>>,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod collection {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "collections")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod collection_file {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "collection_files")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub collection_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub file_id: String,
        pub position: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod api_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub role: String,
        pub prefix: String,
        pub secret_sha256: String,
        pub created_at: ChronoDateTimeUtc,
        pub last_used_at: Option<ChronoDateTimeUtc>,
        pub revoked_at: Option<ChronoDateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit_event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "audit_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at: ChronoDateTimeUtc,
        pub principal: String,
        pub role: Option<String>,
        pub method: String,
        pub target: Option<String>,
        pub code: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod file_suggested_tag {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "file_suggested_tags")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub file_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub vocabulary: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub label: String,
        pub probability: f64,
        pub model_id: String,
        /// Empty, `accepted` or `rejected`.
        pub review: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod file_suggestion_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "file_suggestion_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub file_id: String,
        pub suggestions_key: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod file_fingerprint {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "file_fingerprints")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub file_id: String,
        /// `traum_audio::Fingerprint::to_bytes`.
        #[serde(with = "super::hex_bytes")]
        pub fingerprint: Vec<u8>,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod file_duplicate_link {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "file_duplicate_links")]
    pub struct Model {
        /// The lower of the two file ids.
        #[sea_orm(primary_key, auto_increment = false)]
        pub file_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub other_id: String,
        pub score: f64,
        /// Where `other_id` starts on `file_id`'s timeline.
        pub offset_seconds: f64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod index_change {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "index_changes")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        /// The writer's transaction id on PostgreSQL (set by the database);
        /// NULL on SQLite.
        pub txid: Option<i64>,
        pub file_id: String,
        pub at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod index_feed_state {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "index_feed_state")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub position: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
