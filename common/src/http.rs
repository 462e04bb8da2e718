//! The http server every role runs beside its main service: `/prom` and a status page.

use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};

use crate::metrics::Metrics;

/// Lines of `name: value` a role shows on its status page, computed per request.
pub type StatusFn = Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>;

struct State {
    metrics: Metrics,
    status: StatusFn,
    started: std::time::Instant,
}

/// Binds `addr` and serves `/prom` and `/` (status page) on a tokio task.
/// Returns the bound address (useful with port 0).
pub async fn serve(
    addr: &str,
    metrics: Metrics,
    status: StatusFn,
) -> std::io::Result<std::net::SocketAddr> {
    let state = web::Data::new(State {
        metrics,
        status,
        started: std::time::Instant::now(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/prom", web::get().to(prom))
            .route("/", web::get().to(status_page))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("http server bound no address"))?;
    tokio::spawn(server.run());
    Ok(bound)
}

async fn prom(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

async fn status_page(state: web::Data<State>) -> HttpResponse {
    let role = state.metrics.role();
    let mut rows = vec![
        ("role".to_string(), role.to_string()),
        ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        (
            "uptime".to_string(),
            format!("{}s", state.started.elapsed().as_secs()),
        ),
    ];
    rows.extend((state.status)());
    let mut body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Ozone-RS {role}</title></head>\
         <body><h1>Ozone-RS {role}</h1><table>"
    );
    for (k, v) in rows {
        body.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            escape(&k),
            escape(&v)
        ));
    }
    body.push_str("</table><p><a href=\"/prom\">/prom</a></p></body></html>");
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
