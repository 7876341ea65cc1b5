//! Docker's names for its containers, from its API socket.
//!
//! One request, `GET /containers/json` (the running containers, with their ids and names),
//! written by hand as HTTP/1.0 over the Unix socket. A client crate would bring an async
//! runtime (hyper, bollard) or lacks Unix sockets (ureq, minreq) for one GET; HTTP/1.0 keeps
//! the exchange trivial: Docker's (Go's) server answers a 1.0 request without chunked
//! encoding and closes the connection, so the body is everything after the headers. Any
//! failure only means no names: `gpuhook ps` never fails because the engine cannot be asked.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Docker's default API socket.
pub const DEFAULT_SOCKET: &str = "/run/docker.sock";

/// Long enough for a loaded dockerd, short enough that `ps --watch` stays responsive.
const TIMEOUT: Duration = Duration::from_secs(2);
/// A listing of thousands of containers is a few MB; more is not Docker.
const MAX_RESPONSE_BYTES: u64 = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot talk to {socket}: {source}")]
    Io {
        socket: String,
        source: std::io::Error,
    },
    #[error("unexpected answer from {socket}: {what}")]
    Answer { socket: String, what: String },
}

/// Full container id -> name (without Docker's leading `/`) of the running containers.
pub fn container_names(socket: &Path) -> Result<HashMap<String, String>, DockerError> {
    let shown = socket.display().to_string();
    let io = |source| DockerError::Io {
        socket: shown.clone(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    stream
        .write_all(b"GET /containers/json HTTP/1.0\r\nHost: docker\r\n\r\n")
        .map_err(io)?;
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut response)
        .map_err(io)?;
    parse_listing(&response).map_err(|what| DockerError::Answer {
        socket: shown.clone(),
        what,
    })
}

#[derive(Deserialize)]
struct Listed {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Vec<String>,
}

/// The names in a raw HTTP response to `GET /containers/json`.
pub fn parse_listing(response: &[u8]) -> Result<HashMap<String, String>, String> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.lines().next().unwrap_or_default();
    let code = status.split_whitespace().nth(1);
    if !status.starts_with("HTTP/1.") || code != Some("200") {
        return Err(format!("status {status:?}"));
    }
    let listed: Vec<Listed> =
        serde_json::from_slice(&response[split + 4..]).map_err(|e| e.to_string())?;
    Ok(listed
        .into_iter()
        .filter_map(|c| {
            let name = c.names.first()?.trim_start_matches('/').to_string();
            Some((c.id, name))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    const ID: &str = "3f2a1b9c0d11e2f3a4b5c6d7e8f90123456789abcdef0123456789abcdef0123";

    #[test]
    fn a_listing_gives_names_by_full_id() {
        let body = format!(
            r#"[{{"Id":"{ID}","Names":["/web1"],"Image":"busybox","Labels":{{}}}},{{"Id":"abc","Names":[]}}]"#
        );
        let response = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\n\r\n{body}"
        );
        let names = parse_listing(response.as_bytes()).unwrap();
        assert_eq!(names, HashMap::from([(ID.to_string(), "web1".to_string())]));
    }

    #[test]
    fn errors_and_garbage_are_refused() {
        for bad in [
            "HTTP/1.0 500 Internal Server Error\r\n\r\n[]",
            "HTTP/1.0 200 OK\r\n\r\n{not json",
            "HTTP/1.0 200 OK\r\nno end of headers",
            "SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            assert!(parse_listing(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    /// A one-connection server on a socket in a fresh directory: `answer` gets the connection
    /// and the request read from it (up to the end of its headers).
    fn serve_once<T: Send + 'static>(
        answer: impl FnOnce(UnixStream, String) -> T + Send + 'static,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        std::thread::JoinHandle<T>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "client closed before the end of its request");
                request.extend_from_slice(&buf[..n]);
            }
            answer(conn, String::from_utf8(request).unwrap())
        });
        (dir, socket, server)
    }

    #[test]
    fn the_request_is_one_http_1_0_get_over_the_socket() {
        let (_dir, socket, server) = serve_once(|mut conn, request| {
            let body = format!(r#"[{{"Id":"{ID}","Names":["/trainer"]}}]"#);
            write!(conn, "HTTP/1.0 200 OK\r\n\r\n{body}").unwrap();
            request
        });
        let names = container_names(&socket).unwrap();
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /containers/json HTTP/1.0\r\n"),
            "{request:?}"
        );
        assert_eq!(names.get(ID).map(String::as_str), Some("trainer"));
    }

    #[test]
    fn a_daemon_that_never_answers_is_an_error_not_a_hang() {
        // Reads the request and holds the connection open without a word.
        let (_dir, socket, server) = serve_once(|conn, _| {
            std::thread::park_timeout(TIMEOUT * 3);
            drop(conn);
        });
        let err = container_names(&socket).unwrap_err();
        assert!(matches!(err, DockerError::Io { .. }), "{err}");
        server.thread().unpark();
        server.join().unwrap();
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_hang() {
        let err = container_names(Path::new("/nonexistent/docker.sock")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/docker.sock"),
            "{err}"
        );
    }
}
