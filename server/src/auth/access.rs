//! The access table: the role every RPC and every HTTP route of the web
//! port needs. A method or route missing here is refused to everyone but
//! admins (and a test fails), so a new RPC cannot ship open by accident.

use super::Role;

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential: only the health check (Kubernetes probes send none)
    /// and the web app's own files (the sign-in page must load).
    Open,
    Role(Role),
}

const READ: Access = Access::Role(Role::Read);
const WRITE: Access = Access::Role(Role::Write);
const ADMIN: Access = Access::Role(Role::Admin);

/// Every gRPC method by its full path, as it appears on the wire.
pub const RPC_ACCESS: &[(&str, Access)] = &[
    ("/grpc.health.v1.Health/Check", Access::Open),
    // Watch streams forever; unlike Check it is no probe, so it needs a key.
    ("/grpc.health.v1.Health/Watch", READ),
    ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", READ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        READ,
    ),
    ("/traum.v1.AudioService/UploadAudio", WRITE),
    ("/traum.v1.AudioService/StartUpload", WRITE),
    ("/traum.v1.AudioService/PutUploadChunk", WRITE),
    ("/traum.v1.AudioService/GetUpload", WRITE),
    ("/traum.v1.AudioService/FinishUpload", WRITE),
    ("/traum.v1.AudioService/GetJob", READ),
    ("/traum.v1.AudioService/WatchJob", READ),
    ("/traum.v1.AudioService/ListJobs", READ),
    ("/traum.v1.AudioService/ListFiles", READ),
    ("/traum.v1.AudioService/GetFile", READ),
    ("/traum.v1.AudioService/ListDuplicates", READ),
    ("/traum.v1.AudioService/UpdateFile", WRITE),
    ("/traum.v1.AudioService/ReviewSuggestedTag", WRITE),
    ("/traum.v1.AudioService/DeleteFile", WRITE),
    ("/traum.v1.AudioService/DownloadAudio", READ),
    ("/traum.v1.AudioService/ReprocessFile", WRITE),
    ("/traum.v1.AudioService/GetWaveform", READ),
    ("/traum.v1.AudioService/WatchLibrary", READ),
    ("/traum.v1.AudioService/CreateCollection", WRITE),
    ("/traum.v1.AudioService/ListCollections", READ),
    ("/traum.v1.AudioService/GetCollection", READ),
    ("/traum.v1.AudioService/UpdateCollection", WRITE),
    ("/traum.v1.AudioService/DeleteCollection", WRITE),
    ("/traum.v1.SearchService/SearchByText", READ),
    ("/traum.v1.SearchService/SearchByAudio", READ),
    ("/traum.v1.SearchService/SearchByAudioClip", READ),
    ("/traum.v1.SearchService/SearchSimilar", READ),
    ("/traum.v1.SearchService/Suggest", READ),
    ("/traum.v1.AnalyticsService/GetStats", READ),
    // Usage holds every caller's queries.
    ("/traum.v1.AnalyticsService/GetUsage", ADMIN),
    ("/traum.v1.AdminService/CreateApiKey", ADMIN),
    ("/traum.v1.AdminService/ListApiKeys", ADMIN),
    ("/traum.v1.AdminService/RevokeApiKey", ADMIN),
    ("/traum.v1.AdminService/ListAuditEvents", ADMIN),
];

/// The methods that change something, recorded in the audit log. A
/// resumable upload is recorded once, by `FinishUpload`: its chunks are not.
pub const AUDITED_RPCS: &[&str] = &[
    "/traum.v1.AudioService/UploadAudio",
    "/traum.v1.AudioService/StartUpload",
    "/traum.v1.AudioService/FinishUpload",
    "/traum.v1.AudioService/UpdateFile",
    "/traum.v1.AudioService/ReviewSuggestedTag",
    "/traum.v1.AudioService/DeleteFile",
    "/traum.v1.AudioService/ReprocessFile",
    "/traum.v1.AudioService/CreateCollection",
    "/traum.v1.AudioService/UpdateCollection",
    "/traum.v1.AudioService/DeleteCollection",
    "/traum.v1.AdminService/CreateApiKey",
    "/traum.v1.AdminService/RevokeApiKey",
];

pub fn is_audited(path: &str) -> bool {
    AUDITED_RPCS.contains(&path)
}

/// A file's audio over HTTP, with byte ranges.
pub const AUDIO_ROUTE: &str = "/api/files/{id}/audio";
/// A collection as CSV, JSON, M3U8 or zip.
pub const EXPORT_ROUTE: &str = "/api/collections/{id}/export";
/// The web app's sign-in: it checks the credential it is given itself.
pub const SESSION_ROUTE: &str = "/api/session";

/// The web port's HTTP routes (axum patterns) besides gRPC-Web, whose paths
/// are the RPCs' own. Anything else on that port is the web app's static
/// files, which are open.
pub const HTTP_ROUTES: &[(&str, Access)] = &[
    (AUDIO_ROUTE, READ),
    (EXPORT_ROUTE, READ),
    (SESSION_ROUTE, Access::Open),
];

/// What the gRPC method at `path` needs. An unknown path needs `admin`:
/// refused to everyone else, and answered UNIMPLEMENTED by tonic for admins.
pub fn access_of_rpc(path: &str) -> Access {
    RPC_ACCESS
        .iter()
        .find(|(method, _)| *method == path)
        .map_or(ADMIN, |(_, access)| *access)
}

/// What the HTTP route with this axum pattern needs; `None` for the web
/// app's files (no route matched).
pub fn access_of_http(pattern: Option<&str>) -> Access {
    match pattern {
        None => Access::Open,
        Some(pattern) => HTTP_ROUTES
            .iter()
            .find(|(route, _)| *route == pattern)
            .map_or(ADMIN, |(_, access)| *access),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_exactly_and_unknown_ones_need_admin() {
        assert_eq!(access_of_rpc("/grpc.health.v1.Health/Check"), Access::Open);
        // A prefix or an encoded variant of an open path is not open.
        assert_eq!(access_of_rpc("/grpc.health.v1.Health/Check/"), ADMIN);
        assert_eq!(access_of_rpc("/grpc.health.v1.Health%2FCheck"), ADMIN);
        assert_eq!(access_of_rpc("/traum.v1.AudioService/Nope"), ADMIN);
        assert_eq!(access_of_http(Some("/api/files/{id}/audio")), READ);
        assert_eq!(access_of_http(Some("/api/other")), ADMIN);
        assert_eq!(access_of_http(None), Access::Open);
        let mut paths: Vec<&str> = RPC_ACCESS.iter().map(|(path, _)| *path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), RPC_ACCESS.len(), "one entry per method");
        for path in AUDITED_RPCS {
            let access = access_of_rpc(path);
            assert!(
                access == WRITE || access == ADMIN,
                "{path} changes state, so it needs write"
            );
        }
    }
}
