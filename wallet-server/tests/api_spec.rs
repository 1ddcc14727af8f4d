//! `docs/openapi.yaml` and the routers agree: every route the source declares is in the spec,
//! every operation in the spec reaches a handler of the real router (not the router's own 404
//! or 405), and nothing is listed that does not exist.
//!
//! Routes are read from the `.route("…", get(…).post(…))` calls in `src/`: axum cannot list a
//! router's routes, so the source is the list, and the walk through the real router checks
//! that list against what is actually served.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tower::ServiceExt;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(METHOD, path)` of every `.route(...)` in the source, with the `/api/v1` prefix for the
/// API modules (`app.rs` nests `api::router()` there; `/healthz` is merged at the root).
fn source_routes() -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let app = std::fs::read_to_string(src.join("app.rs")).unwrap();
    assert!(
        app.contains(".nest(\"/api/v1\", api::router())"),
        "the prefix rule below follows app.rs"
    );
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let prefix = if rel.starts_with("api/") && rel != "api/health.rs" {
            "/api/v1"
        } else {
            ""
        };
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            let call = &rest[at + ".route(".len()..];
            // The call's extent: up to its closing parenthesis.
            let mut depth = 1;
            let mut end = call.len();
            for (i, c) in call.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &call[..end];
            let path = call
                .trim_start()
                .strip_prefix('"')
                .and_then(|p| p.split('"').next())
                .unwrap_or_else(|| panic!("{rel}: a route whose path is not a literal: {call}"));
            let mut found = false;
            for m in METHODS {
                let needle = format!("{m}(");
                for (i, _) in call.match_indices(&needle) {
                    let before = call[..i].chars().last();
                    if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                        out.insert((m.to_uppercase(), format!("{prefix}{path}")));
                        found = true;
                    }
                }
            }
            assert!(found, "{rel}: no method in {call}");
            rest = &rest[at + 1..];
        }
    }
    out
}

/// `(METHOD, path)` of every operation in the spec. The file is written in one block style
/// (paths at two spaces, methods at four); anything else fails the count below.
fn spec_routes() -> BTreeSet<(String, String)> {
    let spec =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml"))
            .unwrap();
    let mut out = BTreeSet::new();
    let mut in_paths = false;
    let mut current: Option<String> = None;
    for line in spec.lines() {
        // Blank lines occur inside multi-line strings; they end nothing.
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            in_paths = line == "paths:";
            current = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            if !p.starts_with(' ') {
                current = Some(format!("/{}", p.trim_end_matches(':')));
                continue;
            }
        }
        if let (Some(path), Some(m)) = (&current, line.strip_prefix("    ")) {
            let m = m.trim_end_matches(':');
            if METHODS.contains(&m) {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn spec_and_source_list_the_same_routes() {
    let source = source_routes();
    let spec = spec_routes();
    assert!(source.len() > 40, "the scan found {} routes", source.len());
    let missing: Vec<_> = source.difference(&spec).collect();
    let extra: Vec<_> = spec.difference(&source).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes missing from docs/openapi.yaml: {missing:?}\nlisted but not served: {extra:?}"
    );
}

/// A concrete path for a pattern: a syntactically valid value for each parameter.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| match seg {
            "{bin}" => "000140000002".to_owned(),
            "{id}" | "{terminal_id}" => "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f".to_owned(),
            "{lang}" => "kk".to_owned(),
            s if s.starts_with('{') => "x".to_owned(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_operation_reaches_a_handler() {
    let ts = wallet_server::testkit::state(false).await;
    let app = wallet_server::app(ts.state.clone());
    let routes: BTreeSet<_> = spec_routes().union(&source_routes()).cloned().collect();
    for (method, pattern) in routes {
        let req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(concrete(&pattern))
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        // The router's own refusals have empty bodies; a handler's 404 says what is missing.
        let router_refused = (status == StatusCode::NOT_FOUND
            || status == StatusCode::METHOD_NOT_ALLOWED)
            && body.is_empty();
        assert!(!router_refused, "{method} {pattern}: {status}, no handler");
    }
    // And the check can tell: a route that does not exist is refused by the router itself.
    let resp = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/api/v1/no-such-route")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .is_empty());
}
