//! `traum health`: the gRPC health protocol, per service. Usable as a
//! container health check: exit 0 only when every checked service is
//! SERVING, 1 otherwise (Docker reads 1 as unhealthy and reserves 2).

use std::time::Duration;

use clap::Args;
use serde::Serialize;
use traum_client::{SERVICE_NAMES, ServingStatus, TraumClient};

use super::output::{print_json, print_table};
use super::{Globals, Outcome};

/// How `--service` names the server as a whole (the protocol's `""`).
const OVERALL: &str = "overall";

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Service to check (repeatable): `overall` (the server as a whole),
    /// `audio`, `search`, `analytics`, `admin` or a full name such as
    /// `traum.v1.SearchService` [default: all of them].
    #[arg(long = "service", value_name = "NAME")]
    services: Vec<String>,

    /// Fail when the server has not answered every check within this time, e.g. `2s`.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl HealthArgs {
    /// The protocol names to ask for, in order, without repeats.
    fn service_names(&self) -> Vec<String> {
        if self.services.is_empty() {
            return std::iter::once(String::new())
                .chain(SERVICE_NAMES.iter().map(|name| (*name).to_owned()))
                .collect();
        }
        let mut names: Vec<String> = Vec::new();
        for service in &self.services {
            let name = protocol_name(service);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// `search` → `traum.v1.SearchService`, `overall` (or `""`) → `""`; other
/// names are asked for as given.
fn protocol_name(service: &str) -> String {
    let service = service.trim();
    if service.is_empty() || service.eq_ignore_ascii_case(OVERALL) {
        return String::new();
    }
    SERVICE_NAMES
        .iter()
        .find(|full| {
            full.strip_prefix("traum.v1.")
                .and_then(|short| short.strip_suffix("Service"))
                .is_some_and(|short| short.eq_ignore_ascii_case(service))
        })
        .map_or_else(|| service.to_owned(), |full| (*full).to_owned())
}

fn display_name(name: &str) -> &str {
    if name.is_empty() { OVERALL } else { name }
}

#[derive(Serialize)]
struct CheckJson {
    /// The name in the health protocol; `""` is the server as a whole.
    service: String,
    /// `SERVING`, `NOT_SERVING`, `SERVICE_UNKNOWN` (not registered) or `UNKNOWN`.
    status: String,
    error: Option<String>,
}

pub async fn health(client: &TraumClient, globals: Globals, args: &HealthArgs) -> anyhow::Result<Outcome> {
    let mut checks = Vec::new();
    for service in args.service_names() {
        let (status, error) = match client.check_health(&service).await {
            Ok(status) => (status.as_str_name().to_owned(), None),
            // The protocol's answer for a name the server does not register.
            Err(err) if err.code() == Some(tonic::Code::NotFound) => {
                (ServingStatus::ServiceUnknown.as_str_name().to_owned(), None)
            }
            Err(err) => (
                ServingStatus::Unknown.as_str_name().to_owned(),
                Some(err.to_string()),
            ),
        };
        checks.push(CheckJson {
            service,
            status,
            error,
        });
    }
    let serving = ServingStatus::Serving.as_str_name();
    let unhealthy: Vec<&str> = checks
        .iter()
        .filter(|check| check.status != serving)
        .map(|check| display_name(&check.service))
        .collect();
    if globals.json {
        print_json(&checks)?;
    } else {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|check| {
                vec![
                    display_name(&check.service).to_owned(),
                    check.status.clone(),
                    check.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        print_table(&["SERVICE", "STATUS", "NOTE"], &rows);
    }
    if unhealthy.is_empty() {
        Ok(Outcome::Success)
    } else {
        eprintln!("unhealthy: {}", unhealthy.join(", "));
        Ok(Outcome::Failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_map_to_the_protocol_names() {
        assert_eq!(protocol_name("search"), "traum.v1.SearchService");
        assert_eq!(protocol_name("Admin"), "traum.v1.AdminService");
        assert_eq!(protocol_name("overall"), "");
        assert_eq!(protocol_name(""), "");
        assert_eq!(protocol_name("traum.v1.AudioService"), "traum.v1.AudioService");
        assert_eq!(protocol_name("nope.Service"), "nope.Service");
    }

    #[test]
    fn default_checks_the_server_and_every_service_once() {
        let args = HealthArgs {
            services: Vec::new(),
            timeout: Duration::from_secs(2),
        };
        assert_eq!(args.service_names().len(), 5);
        assert_eq!(args.service_names()[0], "");
        let args = HealthArgs {
            services: vec!["search".into(), "traum.v1.SearchService".into(), "overall".into()],
            timeout: Duration::from_secs(2),
        };
        assert_eq!(args.service_names(), ["traum.v1.SearchService", ""]);
    }
}
