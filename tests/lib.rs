//! Helpers for the end-to-end tests: run the built binaries as real processes in temp dirs.

pub mod fixtures;
pub mod pilot;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The path of a workspace binary. `cargo test --workspace` builds every package's binaries
/// before it runs any test (each package has integration tests of its own).
pub fn binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --workspace` (or run `cargo test --workspace`)",
        path.display()
    );
    path
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Runs a binary to completion, feeding `stdin`; panics with its output when it fails and
/// `expect_success` is set.
pub fn run(name: &str, args: &[&str], stdin: Option<&str>, expect_success: bool) -> Output {
    let mut child = Command::new(binary(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    let out = child.wait_with_output().expect("wait");
    if expect_success && !out.status.success() {
        panic!(
            "{name} {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `wallet-server serve` process, stopped (SIGTERM, then kill) when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub base_url: String,
    pub data_dir: PathBuf,
}

impl ServerProcess {
    pub fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_with_env(data_dir, extra, &[])
    }

    /// [`ServerProcess::start`] with extra environment (`TAMAQ_*` settings).
    pub fn start_with_env(data_dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> ServerProcess {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--listen", &listen, "--data-dir"];
        let dir = data_dir.to_str().expect("utf-8 path");
        args.push(dir);
        args.extend_from_slice(extra);
        let child = Command::new(binary("wallet-server"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start wallet-server");
        let server = ServerProcess {
            child,
            base_url: format!("http://{listen}"),
            data_dir: data_dir.to_path_buf(),
        };
        server.wait_ready(Duration::from_secs(120));
        server
    }

    fn wait_ready(&self, timeout: Duration) {
        let start = Instant::now();
        let client = reqwest::blocking::Client::new();
        while start.elapsed() < timeout {
            if let Ok(r) = client.get(format!("{}/healthz", self.base_url)).send() {
                if r.status().is_success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("wallet-server did not answer /healthz within {timeout:?}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
