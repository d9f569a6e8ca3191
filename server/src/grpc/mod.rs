//! gRPC adapters: one thin service per proto service, the conversions and
//! the error mapping.

mod analytics;
mod audio;
pub mod convert;
mod search;
mod status;

pub use self::analytics::AnalyticsApi;
pub use self::audio::AudioApi;
pub use self::search::{SEARCH_NOT_READY, SearchApi};
