//! Every command in README.md, run as the README writes it.
//!
//! The test reads README.md, takes every line of its ```sh blocks and every inline code span
//! that is a command (a span with a space in it, like `cargo build --release -p
//! canteen-terminal`, or a single word naming an executable file of the repository, like
//! `.ci/run`), looks each one up in [`TABLE`] and runs it. A command the table does not know
//! fails the test before anything runs, and so does a table entry no README command uses: the
//! README and this test change together.
//!
//! The walk-through is followed in README order, in a fresh temp dir as the working directory
//! (so `./data` and `./terminal-data` land there): the demo runs, the parent logs in over HTTP
//! as the wallet page does (with the login code the demo prints), activates the voucher and
//! saves `qr.png`; the terminal commands run as written; the school page is opened and the
//! director signs in with the printed password; the NOBD report command writes into
//! `data/outbox/nobd/`. The deployment block then runs in a second fresh dir.
//!
//! Substitutions, all in [`Walk::command`], [`Walk::placeholders`] and the `env` calls below:
//!
//! * **Programs.** `cargo run --release -p X --`, `target/release/X` and a bare `X` run the `X`
//!   that `cargo test --workspace` has just built from the same sources (debug profile). The
//!   `cargo build --release -p X` and `cargo run` commands are checked with `cargo metadata`
//!   (the package exists and has exactly one binary, named `X`) instead of being run: a release
//!   build of both binaries from scratch would add several minutes to CI on two cores (which
//!   builds everything else in the debug profile) for a difference of optimisation level only,
//!   while the metadata check catches what a newcomer would trip on, a renamed package or
//!   binary.
//! * **Placeholders.** `CODE` is the enrollment code the demo printed, `BIN` a school BIN,
//!   `YYYY-MM-DD` today's service day, `roster.csv` a generated roster (tests/fixtures.rs)
//!   written into the working directory, `http://127.0.0.1:8080` the demo's actual address.
//! * **Ports.** The demo, `serve` and the kiosk listen on port 0
//!   (`TAMAQ_SERVER_LISTEN`, `TAMAQ_TERMINAL_LISTEN`) and the test reads the address they
//!   print, so it never collides with another test or a developer's running demo.
//! * **Calendar.** The demo gets a config (`TAMAQ_CONFIG`) in which every day is a school day
//!   and lunch lasts all day, so the scan says `ok` whenever the test runs; the README says
//!   what a newcomer sees on a weekend or outside lunch time.
//! * **Environment.** Inherited `TAMAQ_*` variables are removed from the children (a
//!   developer's `TAMAQ_DATA_DIR` would move `./data` away).
//! * **Recursion.** `cargo test --workspace` (with or without PostgreSQL), `cargo fmt`,
//!   `cargo clippy` and `.ci/run` are not run: the test checks that `.ci/run`, which CI
//!   executes, runs exactly these commands (`--locked` aside, which only makes CI refuse a stale
//!   Cargo.lock).
//!
//! Unix only: servers are stopped with SIGTERM, as an operator would.
#![cfg(unix)]

use serde_json::{json, Value};
use shared::calendar::ServiceDay;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tamaq_e2e::binary;
use tamaq_e2e::fixtures::{roster_csv, school_bin};

/// The address the README uses for the demo server; the test substitutes the real one.
const README_SERVER: &str = "http://127.0.0.1:8080";

/// How long a started server may take to print its address (the demo seeds a school year
/// first; debug build, busy CI machine).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// What the test does for a README command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum How {
    /// Checked against `.ci/run` instead of being run (it would run this very test).
    RunByCi,
    /// `.ci/run` itself: must exist and be executable.
    CiScript,
    /// `cargo build --release -p X`: the package and its binary exist (cargo metadata).
    Build,
    /// Starts the demo (once) and reads what it prints.
    Demo,
    /// The parent's steps in the wallet over HTTP, ending with the QR image saved as qr.png.
    ParentQr,
    TerminalEnroll,
    /// Run twice: `ok`, then `already_served`.
    TerminalScan,
    TerminalSync,
    /// Started, its page fetched, then stopped.
    Kiosk,
    ReportNobd,
    ImportRoster,
    /// Started, `/healthz` checked, stopped with SIGTERM.
    Serve,
    /// With a password on stdin.
    StaffAdd,
    EnrollCode,
}

/// README commands by program and subcommand (the leading words after the program path is
/// normalised, see [`normalise`]); the longest matching prefix wins.
const TABLE: &[(&str, How)] = &[
    ("cargo test --workspace", How::RunByCi),
    ("cargo fmt", How::RunByCi),
    ("cargo clippy", How::RunByCi),
    (".ci/run", How::CiScript),
    ("cargo build --release -p", How::Build),
    ("wallet-server demo", How::Demo),
    ("GET /api/v1/wallet/vouchers/{id}/qr.png", How::ParentQr),
    ("canteen-terminal enroll", How::TerminalEnroll),
    ("canteen-terminal scan", How::TerminalScan),
    ("canteen-terminal sync", How::TerminalSync),
    ("canteen-terminal kiosk", How::Kiosk),
    ("wallet-server report nobd", How::ReportNobd),
    ("wallet-server import-roster", How::ImportRoster),
    ("wallet-server serve", How::Serve),
    ("wallet-server staff add", How::StaffAdd),
    ("wallet-server terminal enroll-code", How::EnrollCode),
];

// ---------------------------------------------------------------------------------------------
// Reading the README

/// A command as the README writes it.
#[derive(Debug, Clone)]
struct ReadmeCommand {
    /// The text, without a trailing `# comment`.
    text: String,
    /// README line number, for messages.
    line: usize,
    /// `NAME=value` words before the program.
    env: Vec<(String, String)>,
    /// The program and its arguments, with `cargo run --release -p X --` and `target/release/X`
    /// turned into `X` (see [`normalise`]).
    words: Vec<String>,
    /// Whether the program is one cargo builds (and so is run from the test's target dir).
    builds_with_cargo_run: bool,
}

/// What a newcomer does, in README order: a command, or a page opened in the browser.
#[derive(Debug, Clone)]
enum Step {
    Command(ReadmeCommand),
    Open { url: String, line: usize },
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn readme_steps(text: &str, root: &Path) -> Vec<Step> {
    let mut steps = Vec::new();
    // Some(true) inside a ```sh block, Some(false) inside another fenced block.
    let mut fence: Option<bool> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            fence = match fence {
                None => Some(info.trim() == "sh"),
                Some(_) => None,
            };
            continue;
        }
        match fence {
            Some(true) => {
                let text = strip_comment(trimmed);
                if !text.is_empty() {
                    steps.push(Step::Command(parse_command(text, line)));
                }
            }
            Some(false) => {}
            None => {
                for span in inline_spans(raw) {
                    if span.contains(' ') || is_repo_executable(root, span) {
                        steps.push(Step::Command(parse_command(span, line)));
                    }
                }
                for url in autolinks(raw) {
                    steps.push(Step::Open {
                        url: url.to_owned(),
                        line,
                    });
                }
            }
        }
    }
    steps
}

/// `cmd   # comment` → `cmd` (a `#` starts a comment at the line start or after a space).
fn strip_comment(line: &str) -> &str {
    let cut = line
        .char_indices()
        .find(|&(i, c)| c == '#' && (i == 0 || line[..i].ends_with(char::is_whitespace)))
        .map_or(line.len(), |(i, _)| i);
    line[..cut].trim()
}

/// The contents of `single-backtick` spans on one line.
fn inline_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// The targets of `<http://...>` links on one line.
fn autolinks(line: &str) -> Vec<&str> {
    line.split('<')
        .skip(1)
        .filter_map(|s| s.split_once('>').map(|(url, _)| url))
        .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
        .collect()
}

fn is_repo_executable(root: &Path, word: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    !word.contains(char::is_whitespace)
        && std::fs::metadata(root.join(word))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn parse_command(text: &str, line: usize) -> ReadmeCommand {
    let mut words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    let mut env = Vec::new();
    while let Some((name, value)) = words.first().and_then(|w| env_assignment(w)) {
        env.push((name, value));
        words.remove(0);
    }
    let (words, builds_with_cargo_run) = normalise(words);
    ReadmeCommand {
        text: text.to_owned(),
        line,
        env,
        words,
        builds_with_cargo_run,
    }
}

fn env_assignment(word: &str) -> Option<(String, String)> {
    let (name, value) = word.split_once('=')?;
    let is_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    is_name.then(|| (name.to_owned(), value.to_owned()))
}

/// `cargo run --release -p X -- ARGS` → `X ARGS`, `target/release/X ARGS` → `X ARGS`; the flag
/// says the program is one of the workspace's binaries.
fn normalise(words: Vec<String>) -> (Vec<String>, bool) {
    if words.len() > 1 && words[0] == "cargo" && words[1] == "run" {
        let package = words
            .iter()
            .position(|w| w == "-p" || w == "--package")
            .and_then(|i| words.get(i + 1))
            .cloned()
            .unwrap_or_default();
        let args = words
            .iter()
            .position(|w| w == "--")
            .map_or(&[][..], |i| &words[i + 1..]);
        let mut out = vec![package];
        out.extend(args.iter().cloned());
        return (out, true);
    }
    if let Some(name) = words
        .first()
        .and_then(|w| w.strip_prefix("target/release/"))
    {
        let mut out = vec![name.to_owned()];
        out.extend(words[1..].iter().cloned());
        return (out, true);
    }
    (words, false)
}

/// The table entry for a command: the longest entry that is a word prefix of it.
fn lookup(cmd: &ReadmeCommand) -> Option<(&'static str, How)> {
    TABLE
        .iter()
        .filter(|(pattern, _)| {
            let p: Vec<&str> = pattern.split(' ').collect();
            cmd.words.len() >= p.len() && p.iter().zip(&cmd.words).all(|(a, b)| a == b)
        })
        .max_by_key(|(pattern, _)| pattern.len())
        .copied()
}

// ---------------------------------------------------------------------------------------------
// Running programs

/// A program left running (demo, serve, kiosk): its stdout lines are collected (and echoed to
/// stderr for diagnosis); SIGTERM, then kill, when dropped, so a failing test leaves nothing.
struct Running {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(mut command: Command, name: &str) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        // Echoed from threads the test spawns, so the test harness shows them only on failure.
        let out = child.stdout.take().expect("piped stdout");
        let sink = Arc::clone(&lines);
        let label = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("[{label}] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let err = child.stderr.take().expect("piped stderr");
        let label = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[{label} stderr] {line}");
            }
        });
        Running {
            name: name.to_owned(),
            child,
            lines,
        }
    }

    /// The first output line for which `find` gives something, waiting for it.
    fn wait_for<T>(&mut self, what: &str, find: impl Fn(&str) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(found) = self.lines.lock().unwrap().iter().find_map(|l| find(l)) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before printing {what}", self.name);
            }
            assert!(
                start.elapsed() < START_TIMEOUT,
                "{} did not print {what} within {START_TIMEOUT:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit status (killed after 10 s).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("{} did not stop within 10 s of SIGTERM", self.name);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_millis(500));
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `text` from the word after `marker` to the next whitespace.
fn word_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let (_, rest) = text.split_once(marker)?;
    rest.split_whitespace().next()
}

// ---------------------------------------------------------------------------------------------
// The walk-through

/// What the demo printed that the walk-through needs.
struct Demo {
    process: Running,
    base: String,
    parent_phone: String,
    director_password: String,
    enroll_code: String,
    school_bin: String,
}

struct Walk {
    root: PathBuf,
    /// The working directory of the walk-through.
    demo_dir: PathBuf,
    /// The working directory of the deployment block.
    deploy_dir: PathBuf,
    config: PathBuf,
    demo: Option<Demo>,
    voucher_id: Option<String>,
    http: reqwest::blocking::Client,
    /// Last: removed after the processes above have stopped.
    _tmp: tempfile::TempDir,
}

impl Walk {
    fn new(root: PathBuf) -> Walk {
        let tmp = tempfile::tempdir().unwrap();
        let demo_dir = tmp.path().join("walk-through");
        let deploy_dir = tmp.path().join("deployment");
        std::fs::create_dir_all(&demo_dir).unwrap();
        std::fs::create_dir_all(&deploy_dir).unwrap();
        let config = every_day_config(tmp.path());
        Walk {
            root,
            _tmp: tmp,
            demo_dir,
            deploy_dir,
            config,
            demo: None,
            voucher_id: None,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    fn demo(&self) -> &Demo {
        self.demo
            .as_ref()
            .expect("the README runs this before the demo has started")
    }

    /// README placeholders and what replaces them.
    fn placeholders(&self) -> Vec<(&'static str, String)> {
        let mut subs = vec![
            ("BIN", school_bin(0)),
            (
                "YYYY-MM-DD",
                ServiceDay::from_unix(chrono::Utc::now().timestamp()).to_string(),
            ),
        ];
        if let Some(demo) = &self.demo {
            subs.push(("CODE", demo.enroll_code.clone()));
            subs.push((README_SERVER, demo.base.clone()));
        }
        subs
    }

    /// The command as a process: the workspace binary, placeholders replaced, in `dir`, with
    /// inherited `TAMAQ_*` variables removed.
    fn command(&self, cmd: &ReadmeCommand, dir: &Path) -> Command {
        let subs = self.placeholders();
        let args: Vec<String> = cmd.words[1..]
            .iter()
            .map(|w| {
                subs.iter()
                    .find(|(p, _)| p == w)
                    .map_or_else(|| w.clone(), |(_, v)| v.clone())
            })
            .collect();
        eprintln!(
            "README line {}: {}\n  runs: {} {} (in {})",
            cmd.line,
            cmd.text,
            cmd.words[0],
            args.join(" "),
            dir.display()
        );
        let mut command = Command::new(binary(&cmd.words[0]));
        command.args(&args).current_dir(dir).stdin(Stdio::null());
        for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("TAMAQ_")) {
            command.env_remove(name);
        }
        command
    }

    /// Runs a command to completion; panics with its output unless it succeeds.
    fn exec(&self, cmd: &ReadmeCommand, dir: &Path, stdin: Option<&str>) -> Output {
        let mut command = self.command(cmd, dir);
        let out = match stdin {
            None => command.output(),
            Some(text) => {
                use std::io::Write;
                let mut child = command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start");
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(text.as_bytes())
                    .unwrap();
                child.wait_with_output()
            }
        }
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", cmd.text));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("  {}\n  stdout: {stdout}  stderr: {stderr}", out.status);
        assert!(
            out.status.success(),
            "README line {}: `{}` failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
            cmd.line,
            cmd.text,
            out.status
        );
        out
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Open { url, line } => self.open(url, *line),
            Step::Command(cmd) => {
                let (_, how) = lookup(cmd).expect("checked before the walk");
                if cmd.builds_with_cargo_run {
                    check_cargo_builds(&self.root, &cmd.words[0]);
                }
                self.command_step(cmd, how);
            }
        }
    }

    fn command_step(&mut self, cmd: &ReadmeCommand, how: How) {
        match how {
            How::RunByCi => check_ci_runs(&self.root, cmd),
            How::CiScript => check_ci_script(&self.root, cmd),
            How::Build => check_cargo_build(&self.root, cmd),
            How::Demo => self.start_demo(cmd),
            How::ParentQr => self.parent_saves_qr(cmd),
            How::TerminalEnroll => {
                // CODE and the server address come from the running demo.
                self.demo();
                let out = self.exec(cmd, &self.demo_dir, None);
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(text.contains(&self.demo().school_bin), "{text}");
            }
            How::TerminalScan => self.scan_twice(cmd),
            How::TerminalSync => {
                self.exec(cmd, &self.demo_dir, None);
            }
            How::Kiosk => self.kiosk(cmd),
            How::ReportNobd => self.report_nobd(cmd),
            How::ImportRoster => self.import_roster(cmd),
            How::Serve => self.serve(cmd),
            How::StaffAdd => {
                let out = self.exec(cmd, &self.deploy_dir, Some("tau-dala-4821\n"));
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(text.contains("created"), "{text}");
            }
            How::EnrollCode => {
                let out = self.exec(cmd, &self.deploy_dir, None);
                let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                assert!(
                    !code.is_empty() && !code.contains(char::is_whitespace),
                    "one code: {code:?}"
                );
            }
        }
    }

    /// The README names the demo twice (the two commands, then the walk-through): one demo.
    fn start_demo(&mut self, cmd: &ReadmeCommand) {
        if self.demo.is_some() {
            eprintln!("README line {}: {} (running already)", cmd.line, cmd.text);
            return;
        }
        let mut command = self.command(cmd, &self.demo_dir);
        command
            .env("TAMAQ_SERVER_LISTEN", "127.0.0.1:0")
            .env("TAMAQ_CONFIG", &self.config);
        let mut process = Running::start(command, "demo");
        let base = process.wait_for("its address", |l| {
            word_after(l, "Tamaq demo is running at ").map(str::to_owned)
        });
        process.wait_for("the end of its instructions", |l| {
            l.contains("Stop with Ctrl-C").then_some(())
        });
        let printed = process.lines.lock().unwrap().join("\n");
        let find = |what: &str, value: Option<&str>| -> String {
            value
                .unwrap_or_else(|| panic!("the demo did not print {what}:\n{printed}"))
                .to_owned()
        };
        let parent_phone = find(
            "the parent to log in with",
            printed
                .lines()
                .find(|l| l.contains("voucher waiting for activation"))
                .and_then(|l| word_after(l, "log in with ")),
        );
        let director_password = find(
            "the director's password",
            printed
                .lines()
                .find_map(|l| l.trim().strip_prefix("director "))
                .and_then(|rest| rest.split_whitespace().next()),
        );
        let enroll_code = find("an enrollment code", word_after(&printed, "--code "));
        let school_bin = find(
            "the terminal's school",
            word_after(&printed, "Canteen terminal for school "),
        );
        self.demo = Some(Demo {
            process,
            base,
            parent_phone,
            director_password,
            enroll_code,
            school_bin,
        });
    }

    /// Step 1 as the wallet page does it: log in with the printed phone and the code the demo
    /// prints, activate the voucher, fetch the QR image by the README's path into qr.png.
    fn parent_saves_qr(&mut self, cmd: &ReadmeCommand) {
        let path = cmd.words[1].clone();
        let demo = self.demo.as_mut().expect("the demo runs before the parent");
        eprintln!(
            "README line {}: {} (as the wallet page)",
            cmd.line, cmd.text
        );
        let url = |p: &str| format!("{}/api/v1{p}", demo.base);
        let phone = demo.parent_phone.clone();
        let r = self
            .http
            .post(url("/wallet/login"))
            .json(&json!({ "phone": phone }))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "login: {:?}", r.text());
        let marker = format!("demo: login code for {phone}: ");
        let code = demo.process.wait_for("the login code", |l| {
            l.strip_prefix(&marker).map(|c| c.trim().to_owned())
        });
        let session: Value = self
            .http
            .post(url("/wallet/login/verify"))
            .json(&json!({ "phone": phone, "code": code }))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let token = session["session_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_owned();
        let vouchers: Value = self
            .http
            .get(url("/wallet/vouchers"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        // The terminal's enrollment code is for one school: the voucher must be of that school.
        let voucher = vouchers
            .as_array()
            .and_then(|vs| {
                vs.iter()
                    .find(|v| v["status"] == "issued" && v["school_bin"] == demo.school_bin)
            })
            .unwrap_or_else(|| {
                panic!(
                    "no voucher waiting for activation at school {}: {vouchers}",
                    demo.school_bin
                )
            });
        let id = voucher["voucher_id"].as_str().unwrap().to_owned();
        let r = self
            .http
            .post(url(&format!("/wallet/vouchers/{id}/activate")))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "activate: {:?}", r.text());
        let png = self
            .http
            .get(format!("{}{}", demo.base, path.replace("{id}", &id)))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert!(png.status().is_success(), "{path}: {}", png.status());
        assert_eq!(png.headers()["content-type"], "image/png");
        std::fs::write(self.demo_dir.join("qr.png"), png.bytes().unwrap()).unwrap();
        self.voucher_id = Some(id);
    }

    /// `# ok — then already_served`: the first scan serves, the second is refused.
    fn scan_twice(&self, cmd: &ReadmeCommand) {
        assert!(
            self.voucher_id.is_some(),
            "the README scans before the parent saved qr.png"
        );
        for expect in ["ok", "already_served"] {
            let out = self.exec(cmd, &self.demo_dir, None);
            let text = String::from_utf8_lossy(&out.stdout);
            let verdict = text.split_whitespace().next().unwrap_or_default();
            assert_eq!(verdict, expect, "scan said: {text}");
        }
    }

    fn kiosk(&self, cmd: &ReadmeCommand) {
        let mut command = self.command(cmd, &self.demo_dir);
        command.env("TAMAQ_TERMINAL_LISTEN", "127.0.0.1:0");
        let mut kiosk = Running::start(command, "kiosk");
        let base = kiosk.wait_for("its address", |l| word_after(l, " at ").map(str::to_owned));
        let page = self.http.get(&base).send().unwrap();
        assert!(page.status().is_success(), "kiosk page: {}", page.status());
        assert!(page.text().unwrap().contains("<html"), "an HTML page");
        kiosk.terminate();
    }

    /// A page the README tells to open: fetched from the demo; `/school` also signs in as the
    /// director with the printed password, as the login form does.
    fn open(&self, url: &str, line: usize) {
        let Some(path) = url.strip_prefix(README_SERVER) else {
            eprintln!("README line {line}: {url} (not this project's server; not opened)");
            return;
        };
        let demo = self.demo();
        eprintln!("README line {line}: open {url} → {}{path}", demo.base);
        let page = self
            .http
            .get(format!("{}{path}", demo.base))
            .send()
            .unwrap();
        assert!(page.status().is_success(), "{url}: {}", page.status());
        if path == "/school" {
            self.director_signs_in(demo);
        }
    }

    fn director_signs_in(&self, demo: &Demo) {
        let no_redirects = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = format!("username=director&password={}", demo.director_password);
        let r = no_redirects
            .post(format!("{}/school/login", demo.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .unwrap();
        assert!(r.status().is_redirection(), "sign-in: {}", r.status());
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let page = self
            .http
            .get(format!("{}/school", demo.base))
            .header("cookie", cookie)
            .send()
            .unwrap();
        assert!(page.status().is_success(), "school page: {}", page.status());
        let html = page.text().unwrap();
        assert!(
            html.contains(&demo.school_bin),
            "the director sees the school:\n{html}"
        );
    }

    /// Writes the day's report per school into ./data/outbox/nobd/, counting the meal served.
    fn report_nobd(&self, cmd: &ReadmeCommand) {
        let bin = &self.demo().school_bin;
        self.exec(cmd, &self.demo_dir, None);
        let today = ServiceDay::from_unix(chrono::Utc::now().timestamp()).to_string();
        let prefix = format!("{bin}-{today}-r");
        let dir = self.demo_dir.join("data/outbox/nobd");
        let newest = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .unwrap_or_else(|| panic!("no {prefix}*.json in {}", dir.display()));
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(&newest).unwrap()).unwrap();
        assert_eq!(report["meals"]["served_total"], 1, "{report}");
    }

    /// `roster.csv` is a generated roster written where the README's shell would be.
    fn import_roster(&self, cmd: &ReadmeCommand) {
        assert!(cmd.words.iter().any(|w| w == "roster.csv"), "{}", cmd.text);
        std::fs::write(self.deploy_dir.join("roster.csv"), roster_csv(1, 4)).unwrap();
        let out = self.exec(cmd, &self.deploy_dir, None);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains('4'), "import summary: {text}");
    }

    fn serve(&self, cmd: &ReadmeCommand) {
        let mut command = self.command(cmd, &self.deploy_dir);
        command.env("TAMAQ_SERVER_LISTEN", "127.0.0.1:0");
        let mut server = Running::start(command, "serve");
        let base = server.wait_for("its address", |l| {
            word_after(l, "wallet-server listening on ").map(str::to_owned)
        });
        let health = self.http.get(format!("{base}/healthz")).send().unwrap();
        assert!(
            health.status().is_success(),
            "/healthz: {}",
            health.status()
        );
        let status = server.terminate();
        assert!(status.success(), "serve stops cleanly on SIGTERM: {status}");
    }
}

/// Every day a school day, lunch all day: the scan is `ok` whenever the test runs.
fn every_day_config(dir: &Path) -> PathBuf {
    let today = ServiceDay::from_unix(chrono::Utc::now().timestamp()).date();
    let text = format!(
        "[school_year]\nstart = \"{}\"\nend = \"{}\"\n\
         school_days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\n\
         [meals]\nlunch = \"00:00-23:59\"\n",
        today - chrono::Duration::days(30),
        today + chrono::Duration::days(300),
    );
    let path = dir.join("tamaq.toml");
    std::fs::write(&path, text).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// Commands checked rather than run

/// The words of `.ci/run`'s command lines, `--locked` dropped, and its exported variables.
fn ci_script(root: &Path) -> (Vec<Vec<String>>, Vec<(String, String)>) {
    let text = std::fs::read_to_string(root.join(".ci/run")).expect(".ci/run");
    let mut commands = Vec::new();
    let mut exports = Vec::new();
    for line in text.lines().map(strip_comment) {
        if let Some((name, value)) = line.strip_prefix("export ").and_then(|a| a.split_once('=')) {
            exports.push((name.to_owned(), value.trim_matches('"').to_owned()));
        } else if line.starts_with("cargo ") {
            commands.push(
                line.split_whitespace()
                    .filter(|w| *w != "--locked")
                    .map(str::to_owned)
                    .collect(),
            );
        }
    }
    (commands, exports)
}

/// `.ci/run` runs the command as written, with the README's environment; a plain
/// `cargo test --workspace` counts as run by CI's `cargo test --workspace -- --include-ignored`
/// (the same tests and the ignored ones).
fn check_ci_runs(root: &Path, cmd: &ReadmeCommand) {
    eprintln!(
        "README line {}: {} (checked against .ci/run)",
        cmd.line, cmd.text
    );
    let (commands, exports) = ci_script(root);
    let ci_runs_it = commands.iter().any(|ci| {
        *ci == cmd.words
            || (ci.starts_with(&cmd.words)
                && ci[cmd.words.len()..] == ["--".to_owned(), "--include-ignored".to_owned()])
    });
    assert!(
        ci_runs_it,
        "README line {}: `{}` is not what .ci/run runs: {commands:?}",
        cmd.line, cmd.text
    );
    for var in &cmd.env {
        assert!(
            exports.contains(var),
            "README line {}: .ci/run does not export {}={}: {exports:?}",
            cmd.line,
            var.0,
            var.1
        );
    }
}

fn check_ci_script(root: &Path, cmd: &ReadmeCommand) {
    eprintln!(
        "README line {}: {} (exists, executable)",
        cmd.line, cmd.text
    );
    assert!(is_repo_executable(root, &cmd.words[0]), "{}", cmd.text);
}

/// `cargo build --release -p X`: see [`check_cargo_builds`].
fn check_cargo_build(root: &Path, cmd: &ReadmeCommand) {
    let package = cmd.words.get(4).expect("cargo build --release -p PACKAGE");
    eprintln!(
        "README line {}: {} (package checked with cargo metadata)",
        cmd.line, cmd.text
    );
    check_cargo_builds(root, package);
}

/// The workspace has a package `name` with exactly one binary, also `name`: what
/// `cargo build --release -p name` puts in target/release/name and `cargo run -p name` runs.
fn check_cargo_builds(root: &Path, name: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(root)
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "cargo metadata failed");
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let package = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("the workspace has no package {name}"));
    let bins: Vec<&str> = package["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(bins, [name], "package {name} builds these binaries");
}

// ---------------------------------------------------------------------------------------------

#[test]
fn every_readme_command_works_as_written() {
    let started = Instant::now();
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let steps = readme_steps(&text, &root);

    // Every command is known, and every table entry is used, before anything runs.
    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    for step in &steps {
        if let Step::Command(cmd) = step {
            match lookup(cmd) {
                Some((pattern, _)) => {
                    used.insert(pattern);
                }
                None => unknown.push(format!("line {}: {}", cmd.line, cmd.text)),
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "README commands that tests/tests/readme.rs does not know how to run; add them to \
         its TABLE (a multi-word `code span` counts as a command):\n{}",
        unknown.join("\n")
    );
    let unused: Vec<&str> = TABLE
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !used.contains(p))
        .collect();
    assert!(
        unused.is_empty(),
        "TABLE entries no README command uses (remove them): {unused:?}"
    );

    let mut walk = Walk::new(root);
    for step in &steps {
        walk.step(step);
    }
    if let Some(mut demo) = walk.demo.take() {
        demo.process.terminate();
    }
    eprintln!("README walk-through took {:?}", started.elapsed());
}

#[test]
fn readme_parsing_finds_blocks_spans_and_links() {
    let text = "Run `cargo run --release -p wallet-server -- demo` or see `docs/x.md`.\n\
                Open <http://127.0.0.1:8080/wallet>.\n\
                ```sh\n\
                target/release/canteen-terminal scan --image qr.png   # ok\n\
                \n\
                A=b cargo test --workspace\n\
                ```\n\
                ```toml\n\
                key = \"not a command\"\n\
                ```\n";
    let steps = readme_steps(text, Path::new("/nonexistent"));
    let shown: Vec<String> = steps
        .iter()
        .map(|s| match s {
            Step::Command(c) => format!("{} {:?}", c.words.join(" "), c.env),
            Step::Open { url, .. } => url.clone(),
        })
        .collect();
    assert_eq!(
        shown,
        [
            "wallet-server demo []",
            "http://127.0.0.1:8080/wallet",
            "canteen-terminal scan --image qr.png []",
            "cargo test --workspace [(\"A\", \"b\")]",
        ]
    );
}
