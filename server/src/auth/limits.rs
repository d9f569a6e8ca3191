//! Per-caller limits: token buckets for searches and for new uploads,
//! a cap on concurrent uploads, and a growing delay for failed credentials.
//! A caller is its principal when authenticated, else its IP address. The
//! state is per replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Buckets kept before idle, full ones are swept.
const MAX_TRACKED: usize = 10_000;
/// Failed attempts older than this no longer slow a client down.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const FIRST_FAILURE_DELAY: Duration = Duration::from_millis(50);

/// Requests per second and the burst a bucket holds; `per_second` 0 is off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// The limits, as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub search: Rate,
    pub upload: Rate,
    /// Upload streams and chunk calls in flight per caller; 0 is unlimited.
    pub max_concurrent_uploads: usize,
    /// Longest hold-back of an answer to a failed credential; zero is off.
    pub max_failure_delay: Duration,
}

/// Which limit a method counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallClass {
    Search,
    /// Starts an upload: counted by the rate and held while it runs.
    NewUpload,
    /// Carries upload bytes: held while it runs, not rated (a large file
    /// is many chunks).
    UploadData,
    Other,
}

impl CallClass {
    pub fn of(path: &str) -> CallClass {
        match path {
            "/traum.v1.SearchService/SearchByText"
            | "/traum.v1.SearchService/SearchByAudio"
            | "/traum.v1.SearchService/SearchByAudioClip"
            | "/traum.v1.SearchService/SearchSimilar" => CallClass::Search,
            "/traum.v1.AudioService/UploadAudio" | "/traum.v1.AudioService/StartUpload" => {
                CallClass::NewUpload
            }
            "/traum.v1.AudioService/PutUploadChunk" | "/traum.v1.AudioService/FinishUpload" => {
                CallClass::UploadData
            }
            _ => CallClass::Other,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Held while an upload call runs; releases its slot when dropped.
pub struct UploadSlot {
    limiter: Arc<State>,
    caller: String,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        if let Ok(mut uploads) = self.limiter.uploads.lock()
            && let Some(count) = uploads.get_mut(&self.caller)
        {
            *count -= 1;
            if *count == 0 {
                uploads.remove(&self.caller);
            }
        }
    }
}

struct State {
    limits: Limits,
    buckets: Mutex<HashMap<(CallClass, String), Bucket>>,
    uploads: Mutex<HashMap<String, usize>>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Applies [`Limits`]; cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    state: Arc<State>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            state: Arc::new(State {
                limits,
                buckets: Mutex::new(HashMap::new()),
                uploads: Mutex::new(HashMap::new()),
                failures: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Lets one call of `class` by `caller` through, or says when to retry.
    pub fn admit(&self, class: CallClass, caller: &str) -> Result<Option<UploadSlot>> {
        let limits = self.state.limits;
        let rate = match class {
            CallClass::Search => Some((limits.search, "searches")),
            CallClass::NewUpload => Some((limits.upload, "new uploads")),
            CallClass::UploadData | CallClass::Other => None,
        };
        if let Some((rate, what)) = rate {
            self.take_token(class, caller, rate, what)?;
        }
        if !matches!(class, CallClass::NewUpload | CallClass::UploadData)
            || limits.max_concurrent_uploads == 0
        {
            return Ok(None);
        }
        let mut uploads = self
            .state
            .uploads
            .lock()
            .map_err(|_| Error::Internal("the upload counter is poisoned".into()))?;
        let count = uploads.entry(caller.to_owned()).or_insert(0);
        if *count >= limits.max_concurrent_uploads {
            return Err(Error::RateLimited {
                message: format!(
                    "{caller} already has {count} uploads in flight, the most allowed; finish one first"
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        *count += 1;
        Ok(Some(UploadSlot {
            limiter: self.state.clone(),
            caller: caller.to_owned(),
        }))
    }

    fn take_token(&self, class: CallClass, caller: &str, rate: Rate, what: &str) -> Result<()> {
        if rate.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let burst = f64::from(rate.burst.max(1));
        let mut buckets = self
            .state
            .buckets
            .lock()
            .map_err(|_| Error::Internal("the rate buckets are poisoned".into()))?;
        if buckets.len() > MAX_TRACKED {
            // A bucket refilled to the brim says no more than a fresh one.
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate.per_second < burst);
        }
        let bucket = buckets.entry((class, caller.to_owned())).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate.per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - bucket.tokens) / rate.per_second);
        Err(Error::RateLimited {
            message: format!(
                "{caller} is over the limit of {} {what} per second (burst {}); retry in {} ms",
                rate.per_second,
                rate.burst,
                wait.as_millis().max(1)
            ),
            retry_after: wait,
        })
    }

    /// Records a failed credential from `client` and returns how long to
    /// hold the answer back: doubling from 50 ms with each failure in the
    /// last minute, up to the configured most, so guessing keys is slow.
    pub fn failure_delay(&self, client: &str) -> Duration {
        let most = self.state.limits.max_failure_delay;
        if most.is_zero() {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let Ok(mut failures) = self.state.failures.lock() else {
            return most;
        };
        if failures.len() > MAX_TRACKED {
            failures.retain(|_, (_, at)| now.duration_since(*at) < FAILURE_WINDOW);
        }
        let entry = failures.entry(client.to_owned()).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        FIRST_FAILURE_DELAY
            .saturating_mul(1 << entry.0.saturating_sub(1).min(16))
            .min(most)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(search: f64, burst: u32, concurrent: usize) -> Limiter {
        Limiter::new(Limits {
            search: Rate {
                per_second: search,
                burst,
            },
            upload: Rate {
                per_second: 0.0,
                burst: 1,
            },
            max_concurrent_uploads: concurrent,
            max_failure_delay: Duration::from_secs(2),
        })
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_wait_and_refills() {
        let limiter = limiter(2.0, 3, 0);
        for _ in 0..3 {
            limiter.admit(CallClass::Search, "key a").unwrap();
        }
        let Err(Error::RateLimited { retry_after, message }) = limiter.admit(CallClass::Search, "key a")
        else {
            panic!("the fourth search is over the burst");
        };
        assert!(
            retry_after > Duration::ZERO && retry_after <= Duration::from_millis(500),
            "{retry_after:?}"
        );
        assert!(message.contains("2 searches per second (burst 3)"), "{message}");
        // Another caller has a bucket of its own; other calls are not rated.
        limiter.admit(CallClass::Search, "key b").unwrap();
        limiter.admit(CallClass::Other, "key a").unwrap();
        std::thread::sleep(retry_after + Duration::from_millis(20));
        limiter.admit(CallClass::Search, "key a").expect("refilled");
    }

    #[test]
    fn concurrent_uploads_are_capped_per_caller_and_slots_come_back() {
        let limiter = limiter(0.0, 1, 2);
        let first = limiter.admit(CallClass::NewUpload, "ip 10.0.0.1").unwrap();
        let _second = limiter.admit(CallClass::UploadData, "ip 10.0.0.1").unwrap();
        assert!(matches!(
            limiter.admit(CallClass::UploadData, "ip 10.0.0.1"),
            Err(Error::RateLimited { .. })
        ));
        limiter.admit(CallClass::NewUpload, "ip 10.0.0.2").unwrap();
        drop(first);
        limiter
            .admit(CallClass::UploadData, "ip 10.0.0.1")
            .expect("a slot came back");
    }

    #[test]
    fn failed_credentials_are_answered_ever_later() {
        let limiter = limiter(0.0, 1, 0);
        let delays: Vec<u128> = (0..8)
            .map(|_| limiter.failure_delay("ip 1").as_millis())
            .collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(limiter.failure_delay("ip 2").as_millis(), 50, "per client");
    }
}
