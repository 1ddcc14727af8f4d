//! A pilot in a temporary folder for the end-to-end tests: the server's data dir and config,
//! its command line, the SMS outbox file, parents' wallet sessions and canteen terminals.

use crate::{run, stdout, ServerProcess};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// The secret the tests' SMS gateway sends with parents' replies.
pub const GATEWAY_SECRET: &str = "e2e-gateway-secret";

pub struct Pilot {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    config: PathBuf,
    database_url: Option<String>,
}

impl Pilot {
    /// A fresh data dir with `config` as its `tamaq.toml`, on SQLite or at `database_url`.
    pub fn new(config: &str, database_url: Option<&str>) -> Pilot {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("server");
        let path = dir.path().join("tamaq.toml");
        std::fs::write(&path, config).expect("write config");
        Pilot {
            data,
            config: path,
            database_url: database_url.map(str::to_owned),
            dir,
        }
    }

    /// `--data-dir`, `--config` and, on PostgreSQL, `--database-url`.
    pub fn common_args(&self) -> Vec<String> {
        let mut args = vec![
            "--data-dir".to_owned(),
            self.data.display().to_string(),
            "--config".to_owned(),
            self.config.display().to_string(),
        ];
        if let Some(url) = &self.database_url {
            args.extend(["--database-url".to_owned(), url.clone()]);
        }
        args
    }

    /// Runs `wallet-server ARGS` on this pilot; panics with its output when `ok` and it fails.
    pub fn cli(&self, args: &[&str], ok: bool) -> Output {
        let all: Vec<String> = args
            .iter()
            .map(|s| s.to_string())
            .chain(self.common_args())
            .collect();
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run("wallet-server", &refs, None, ok)
    }

    /// `wallet-server serve` on this pilot.
    pub fn serve(&self) -> ServerProcess {
        let extra: Vec<String> = self.common_args()[2..].to_vec();
        let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        ServerProcess::start(&self.data, &refs)
    }

    /// Writes `name` into the pilot's folder and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// Every SMS the default gateway wrote to `outbox/sms.jsonl`.
    pub fn sms(&self) -> Vec<Value> {
        std::fs::read_to_string(self.data.join("outbox/sms.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each outbox line is JSON"))
            .collect()
    }

    /// The texts of the SMS of `kind` sent to `to`, oldest first.
    pub fn sms_to(&self, to: &str, kind: &str) -> Vec<String> {
        self.sms()
            .into_iter()
            .filter(|s| s["to"] == to && s["kind"] == kind)
            .map(|s| s["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits (20 s at most) for the `n`-th (from 0) SMS of `kind` to `to` and returns its text.
    pub fn wait_for_sms(&self, to: &str, kind: &str, n: usize) -> String {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Some(text) = self.sms_to(to, kind).into_iter().nth(n) {
                return text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no SMS number {n} of kind {kind} to {to} within 20 s");
    }
}

/// A parent's answer arriving through the SMS gateway.
pub fn reply(http: &reqwest::blocking::Client, server: &ServerProcess, from: &str, text: &str) {
    let r = http
        .post(server.url("/api/v1/sms/inbound"))
        .header("X-Gateway-Secret", GATEWAY_SECRET)
        .json(&json!({"from": from, "text": text}))
        .send()
        .expect("inbound SMS");
    assert!(r.status().is_success(), "reply {text} from {from}: {r:?}");
}

/// A parent logs in to the wallet with the code the server sends by SMS; returns the session.
pub fn login(
    http: &reqwest::blocking::Client,
    server: &ServerProcess,
    pilot: &Pilot,
    phone: &str,
) -> String {
    let before = pilot.sms_to(phone, "login_code").len();
    let r = http
        .post(server.url("/api/v1/wallet/login"))
        .json(&json!({"phone": phone}))
        .send()
        .expect("login request");
    assert!(r.status().is_success(), "login of {phone}: {r:?}");
    let text = pilot.wait_for_sms(phone, "login_code", before);
    let code: String = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a six-digit code in the SMS")
        .to_owned();
    let session: Value = http
        .post(server.url("/api/v1/wallet/login/verify"))
        .json(&json!({"phone": phone, "code": code}))
        .send()
        .expect("verify")
        .json()
        .expect("JSON session");
    session["session_token"]
        .as_str()
        .expect("session token")
        .to_owned()
}

/// `GET path` with a wallet session: status and JSON body (`null` when there is none).
pub fn wallet_get(
    http: &reqwest::blocking::Client,
    server: &ServerProcess,
    session: &str,
    path: &str,
) -> (u16, Value) {
    let r = http
        .get(server.url(path))
        .bearer_auth(session)
        .send()
        .expect("wallet request");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// `POST path` with a wallet session and a JSON body: status and JSON answer.
pub fn wallet_post(
    http: &reqwest::blocking::Client,
    server: &ServerProcess,
    session: &str,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let r = http
        .post(server.url(path))
        .bearer_auth(session)
        .json(body)
        .send()
        .expect("wallet request");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// A canteen terminal's data dir, enrolled at a school of the pilot.
pub struct Terminal {
    pub dir: PathBuf,
}

impl Terminal {
    /// Enrolls a terminal at `school_bin` with a code from the CLI.
    pub fn enroll(pilot: &Pilot, server: &ServerProcess, school_bin: &str, name: &str) -> Terminal {
        let out = pilot.cli(&["terminal", "enroll-code", "--school", school_bin], true);
        let code = stdout(&out).trim().to_owned();
        let t = Terminal {
            dir: pilot.dir.path().join(name),
        };
        t.run(
            &["enroll", "--server", &server.base_url, "--code", &code],
            None,
            true,
        );
        t
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>, ok: bool) -> Output {
        let mut a = args.to_vec();
        let dir = self.dir.to_str().expect("utf-8 path");
        a.extend(["--data-dir", dir]);
        run("canteen-terminal", &a, stdin, ok)
    }

    /// Syncs with the server (upload, then snapshot).
    pub fn sync(&self) -> Value {
        serde_json::from_str(&stdout(&self.run(&["sync", "--json"], None, true)))
            .expect("sync --json")
    }

    /// Scans a token typed by a wedge scanner: the verdict as JSON.
    pub fn scan(&self, token: &str) -> Value {
        let out = self.run(&["scan", "--json"], Some(&format!("{token}\n")), false);
        serde_json::from_str(stdout(&out).lines().next().expect("one verdict"))
            .expect("JSON verdict")
    }
}

/// Reads the server's SQLite files (database, WAL, shared memory) as bytes, to look for values
/// that must not be there.
pub fn database_bytes(data: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(data).expect("data dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.contains(".db") || name.contains("sqlite") {
            all.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
    all
}
