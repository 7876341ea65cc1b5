//! `gpuhook metrics`: `gpuhook ps` as Prometheus text, printed once (node_exporter's textfile
//! collector) or served over HTTP for a scrape (`--listen`).

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;
use tiny_http::{Header, Method, Request, Response, Server};

use gpuhook::accounting::nvml::GpuQuery;
use gpuhook::accounting::{prometheus, snapshot, Sources};
use gpuhook::config::Config;

use crate::fail;
use crate::ps::{open_nvml, SourceArgs};

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// Serve the metrics at http://ADDR/metrics instead of printing them once
    /// (e.g. 127.0.0.1:9400; loopback only unless --allow-remote).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Allow --listen on an address other hosts can reach. The metrics name containers and
    /// processes: restrict who can connect (firewall) when you do.
    #[arg(long, requires = "listen")]
    allow_remote: bool,
    #[command(flatten)]
    sources: SourceArgs,
}

pub fn metrics(config: &Config, args: &MetricsArgs) -> ExitCode {
    if let Some(addr) = args.listen {
        if !addr.ip().is_loopback() && !args.allow_remote {
            return fail(None, &format!(
                "--listen {addr}: not a loopback address; the metrics name containers and processes, so they are served to other hosts only with --allow-remote"
            ));
        }
    }
    let query = match open_nvml(config) {
        Ok(query) => query,
        Err(e) => return fail(None, &e),
    };
    let sources = args.sources.sources(config);
    let Some(addr) = args.listen else {
        return match snapshot(&query, &sources) {
            Ok(s) => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout
                    .write_all(prometheus::render(&s).as_bytes())
                    .and_then(|()| stdout.flush());
                ExitCode::SUCCESS
            }
            Err(e) => fail(None, &e.to_string()),
        };
    };
    serve(addr, args.allow_remote, &query, &sources)
}

fn serve(addr: SocketAddr, remote: bool, query: &GpuQuery, sources: &Sources) -> ExitCode {
    let server = match Server::http(addr) {
        Ok(server) => server,
        Err(e) => return fail(None, &format!("cannot listen on {addr}: {e}")),
    };
    let bound = server
        .server_addr()
        .to_ip()
        .map_or(addr.to_string(), |a| a.to_string());
    let reach = if remote {
        " (not loopback: reachable from other hosts, --allow-remote)"
    } else {
        ""
    };
    eprintln!("gpuhook: serving metrics at http://{bound}/metrics{reach}");
    for request in server.incoming_requests() {
        answer(request, query, sources);
    }
    ExitCode::SUCCESS
}

fn text_response(
    status: u16,
    body: String,
    content_type: &str,
) -> Response<std::io::Cursor<Vec<u8>>> {
    let header = Header::from_bytes("Content-Type", content_type).ok();
    let response = Response::from_string(body).with_status_code(status);
    match header {
        Some(header) => response.with_header(header),
        None => response,
    }
}

/// One scrape: fresh figures every time. A failed NVML query is a 500 with its message (the
/// server keeps serving; the next scrape may succeed).
fn answer(request: Request, query: &GpuQuery, sources: &Sources) {
    let path = request.url().split('?').next().unwrap_or_default();
    let plain = "text/plain; charset=utf-8";
    let response = match (request.method(), path) {
        (Method::Get | Method::Head, "/metrics") => match snapshot(query, sources) {
            Ok(s) => text_response(200, prometheus::render(&s), prometheus::CONTENT_TYPE),
            Err(e) => {
                eprintln!("gpuhook: metrics: {e}");
                text_response(500, format!("{e}\n"), plain)
            }
        },
        (Method::Get | Method::Head, _) => {
            text_response(404, "gpuhook serves /metrics\n".into(), plain)
        }
        _ => text_response(405, "only GET and HEAD\n".into(), plain),
    };
    // The scraper may have gone; nothing to do about it.
    let _ = request.respond(response);
}
