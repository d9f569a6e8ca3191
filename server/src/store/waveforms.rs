//! Waveform peaks of files, one row per file.

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::EntityTrait;
use sea_orm::sea_query::OnConflict;

use super::Store;
use super::entities::waveform;
use crate::domain::StoredWaveform;
use crate::error::Result;
use traum_audio::PeakLevel;

impl Store {
    /// Stores (or replaces) a file's waveform. One statement, no read
    /// first: SQLite takes its write lock at once, and the foreign key
    /// refuses a file deleted meanwhile.
    pub async fn put_waveform(&self, file_id: &str, waveform: &StoredWaveform) -> Result<()> {
        let row = waveform::ActiveModel {
            file_id: Set(file_id.to_owned()),
            sample_rate_hz: Set(i32::try_from(waveform.sample_rate_hz).unwrap_or(i32::MAX)),
            frames: Set(i64::try_from(waveform.frames).unwrap_or(i64::MAX)),
            overview_samples_per_pair: Set(to_i32(waveform.peaks.overview.samples_per_pair)),
            overview: Set(to_bytes(&waveform.peaks.overview.peaks)),
            detail_samples_per_pair: Set(waveform.peaks.detail.as_ref().map(|d| to_i32(d.samples_per_pair))),
            detail: Set(waveform.peaks.detail.as_ref().map(|d| to_bytes(&d.peaks))),
            created_at: Set(Utc::now()),
        };
        waveform::Entity::insert(row)
            .on_conflict(
                OnConflict::column(waveform::Column::FileId)
                    .update_columns([
                        waveform::Column::SampleRateHz,
                        waveform::Column::Frames,
                        waveform::Column::OverviewSamplesPerPair,
                        waveform::Column::Overview,
                        waveform::Column::DetailSamplesPerPair,
                        waveform::Column::Detail,
                        waveform::Column::CreatedAt,
                    ])
                    .to_owned(),
            )
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// A file's waveform, if one was computed.
    pub async fn get_waveform(&self, file_id: &str) -> Result<Option<StoredWaveform>> {
        let Some(row) = waveform::Entity::find_by_id(file_id.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let level = |samples_per_pair: i32, bytes: Vec<u8>| PeakLevel {
            samples_per_pair: u32::try_from(samples_per_pair).unwrap_or(1),
            peaks: bytes.into_iter().map(|b| b as i8).collect(),
        };
        let detail = match (row.detail_samples_per_pair, row.detail) {
            (Some(step), Some(bytes)) => Some(level(step, bytes)),
            _ => None,
        };
        Ok(Some(StoredWaveform {
            sample_rate_hz: u32::try_from(row.sample_rate_hz).unwrap_or(0),
            frames: u64::try_from(row.frames).unwrap_or(0),
            peaks: traum_audio::WaveformPeaks {
                overview: level(row.overview_samples_per_pair, row.overview),
                detail,
            },
        }))
    }
}

fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn to_bytes(peaks: &[i8]) -> Vec<u8> {
    peaks.iter().map(|&p| p as u8).collect()
}
