//! Test support: an in-memory stand-in for the wallet server's terminal API (enroll, snapshot,
//! events) with the behaviour DESIGN §5 asks of the real one, plus keys, tokens and clocks.
#![allow(dead_code)]

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use canteen_terminal::clock::{Clock, ManualClock};
use canteen_terminal::{Settings, Terminal};
use chrono::{NaiveDate, NaiveTime, Weekday};
use shared::calendar::{MealKind, MealWindow, SchoolYear, ServiceDay};
use shared::error::ErrorBody;
use shared::keys::KeyPair;
use shared::token::{self, TokenRequest};
use shared::trust::{SignedTrustList, TrustPayload, TrustedKey};
use shared::verdict::Verdict;
use shared::wire::{
    EnrollRequest, EnrollResponse, EventAck, EventUpload, ServedMeal, Snapshot, SnapshotVoucher,
    TerminalEvent, VoucherStatus,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

pub const SCHOOL_CODE: u32 = 7001;
pub const SCHOOL_BIN: &str = "123456789012";

/// Monday 2026-11-23, 12:00 local (07:00 UTC): a school day inside the lunch window.
pub fn monday_noon() -> i64 {
    ServiceDay(NaiveDate::from_ymd_opt(2026, 11, 23).unwrap())
        .unix_at(NaiveTime::from_hms_opt(12, 0, 0).unwrap())
}

pub fn standard_windows() -> Vec<MealWindow> {
    vec![
        MealWindow::parse(MealKind::Breakfast, "08:00-10:00").unwrap(),
        MealWindow::parse(MealKind::Lunch, "11:00-15:00").unwrap(),
    ]
}

/// A calendar and windows under which any moment of any day is inside a meal window (for tests
/// that run the binary on the real clock).
pub fn always_open() -> (SchoolYear, Vec<MealWindow>) {
    let year = SchoolYear {
        start: NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(),
        end: NaiveDate::from_ymd_opt(2100, 12, 31).unwrap(),
        breaks: vec![],
        school_days: vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ],
    };
    let windows = vec![MealWindow::parse(MealKind::Lunch, "00:00-23:59").unwrap()];
    (year, windows)
}

pub fn voucher(n: u32, status: VoucherStatus) -> SnapshotVoucher {
    SnapshotVoucher {
        voucher_id: Uuid::from_u128(0x1000_0000_0000_0000_0000_0000_0000_0000 + u128::from(n)),
        status,
        valid_from: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
        valid_to: NaiveDate::from_ymd_opt(2027, 5, 25).unwrap(),
        display_name: format!("Айгерим{n} С."),
        grade: (n % 11 + 1) as u8,
        class_letter: "Б".to_owned(),
        card_number: Some(format!("0{:08}", n)),
        moved_away: false,
    }
}

pub fn trusted(key: &KeyPair, not_after: i64, verify_until: i64) -> TrustedKey {
    TrustedKey {
        key_id: key.key_id(),
        public_key: key.public_b64(),
        not_before: 0,
        not_after,
        verify_until,
    }
}

#[derive(Debug, Clone)]
struct StoredVoucher {
    voucher: SnapshotVoucher,
    changed_at: i64,
}

/// What the fake server holds.
pub struct ServerState {
    pub root: KeyPair,
    pub trust_list: SignedTrustList,
    pub calendar: SchoolYear,
    pub next_calendar: Option<SchoolYear>,
    pub meal_windows: Vec<MealWindow>,
    vouchers: Vec<StoredVoucher>,
    pub version: i64,
    pub codes: HashSet<String>,
    /// secret → (terminal id, label)
    pub terminals: HashMap<String, (Uuid, String)>,
    /// (terminal, seq) → event: "on conflict do nothing".
    pub events: BTreeMap<(Uuid, i64), TerminalEvent>,
    /// Events received in upload bodies, duplicates included.
    pub received: u64,
    /// Fail the upload with a 500 once this many events were received in total (those before
    /// it in the same request stay stored), then behave again.
    pub fail_when_received: Option<u64>,
    /// Answer every request with 503 (a gateway in front of a stopped server).
    pub unavailable: bool,
    pub now: Arc<dyn Clock>,
    /// The X-Terminal-Time of the last snapshot or upload call.
    pub last_terminal_time: Option<i64>,
    /// The terminal version header of every call, in order (None: the header was missing).
    pub versions_seen: Vec<Option<String>>,
    /// Answer uploads with HTTP 426 `terminal_upgrade_required` and this message.
    pub upgrade_required: Option<String>,
}

impl ServerState {
    pub fn set_vouchers(&mut self, vouchers: Vec<SnapshotVoucher>) {
        self.version += 1;
        let at = self.version;
        self.vouchers = vouchers
            .into_iter()
            .map(|voucher| StoredVoucher {
                voucher,
                changed_at: at,
            })
            .collect();
    }

    pub fn upsert_voucher(&mut self, v: SnapshotVoucher) {
        self.version += 1;
        let at = self.version;
        match self
            .vouchers
            .iter_mut()
            .find(|s| s.voucher.voucher_id == v.voucher_id)
        {
            Some(s) => {
                s.voucher = v;
                s.changed_at = at;
            }
            None => self.vouchers.push(StoredVoucher {
                voucher: v,
                changed_at: at,
            }),
        }
    }

    pub fn set_trust(&mut self, payload: &TrustPayload) {
        self.version += 1;
        self.trust_list = SignedTrustList::sign(payload, &self.root);
    }

    /// Contiguous from 1, as the real server acknowledges.
    pub fn last_seq(&self, terminal: Uuid) -> i64 {
        let mut n = 0;
        while self.events.contains_key(&(terminal, n + 1)) {
            n += 1;
        }
        n
    }

    pub fn events_of(&self, terminal: Uuid) -> Vec<TerminalEvent> {
        self.events
            .iter()
            .filter(|((t, _), _)| *t == terminal)
            .map(|(_, e)| e.clone())
            .collect()
    }

    fn snapshot(&self, cursor: i64, for_terminal: Uuid) -> Snapshot {
        let now = self.now.now();
        let today = ServiceDay::from_unix(now).0;
        let mut first_ok: HashMap<(Uuid, MealKind), ServedMeal> = HashMap::new();
        for ((terminal, _), e) in &self.events {
            if e.verdict != Verdict::Ok || e.service_day != today || *terminal == for_terminal {
                continue;
            }
            let Some(v) = e.voucher_id else { continue };
            let label = self
                .terminals
                .values()
                .find(|(id, _)| id == terminal)
                .map(|(_, l)| l.clone())
                .unwrap_or_default();
            first_ok.entry((v, e.meal_kind)).or_insert(ServedMeal {
                voucher_id: v,
                meal_kind: e.meal_kind,
                service_day: e.service_day,
                served_at: e.scanned_at,
                terminal_id: *terminal,
                terminal_label: label,
            });
        }
        Snapshot {
            cursor: self.version,
            full: cursor == 0,
            server_time: now,
            trust_list: self.trust_list.clone(),
            school_code: SCHOOL_CODE,
            calendar: self.calendar.clone(),
            next_calendar: self.next_calendar.clone(),
            meal_windows: self.meal_windows.clone(),
            vouchers: self
                .vouchers
                .iter()
                .filter(|s| s.changed_at > cursor)
                .map(|s| s.voucher.clone())
                .collect(),
            served_today: first_ok.into_values().collect(),
        }
    }
}

pub type Shared = Arc<Mutex<ServerState>>;

pub struct FakeServer {
    pub addr: SocketAddr,
    pub state: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

fn note_version(st: &mut ServerState, headers: &HeaderMap) {
    let v = headers
        .get(shared::wire::TERMINAL_VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    st.versions_seen.push(v);
}

fn terminal_time(headers: &HeaderMap) -> Option<i64> {
    headers.get("x-terminal-time")?.to_str().ok()?.parse().ok()
}

fn terminal_of(state: &ServerState, headers: &HeaderMap) -> Option<Uuid> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let secret = auth.strip_prefix("Bearer ")?;
    state.terminals.get(secret).map(|(id, _)| *id)
}

async fn enroll(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<EnrollRequest>,
) -> Response {
    let mut st = s.lock().unwrap();
    note_version(&mut st, &headers);
    if st.unavailable {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if !st.codes.remove(&req.code) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "bad_enroll_code",
            "The enrollment code is unknown, used or expired.",
        );
    }
    let terminal_id = Uuid::new_v4();
    let secret = hex::encode(rand::random::<[u8; 32]>());
    st.terminals.insert(
        secret.clone(),
        (terminal_id, req.label.clone().unwrap_or_default()),
    );
    let snapshot = st.snapshot(0, terminal_id);
    Json(EnrollResponse {
        terminal_id,
        school_bin: SCHOOL_BIN.to_owned(),
        school_code: SCHOOL_CODE,
        school_name: "№7 мектеп".to_owned(),
        secret,
        root_public_key: st.root.public_b64(),
        snapshot,
    })
    .into_response()
}

#[derive(serde::Deserialize)]
struct CursorQuery {
    cursor: i64,
}

async fn snapshot(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<CursorQuery>,
) -> Response {
    let mut st = s.lock().unwrap();
    note_version(&mut st, &headers);
    if st.unavailable {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Some(terminal) = terminal_of(&st, &headers) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unknown terminal.",
        );
    };
    st.last_terminal_time = terminal_time(&headers);
    Json(st.snapshot(q.cursor, terminal)).into_response()
}

async fn events(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(upload): Json<EventUpload>,
) -> Response {
    let mut st = s.lock().unwrap();
    note_version(&mut st, &headers);
    if st.unavailable {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Some(terminal) = terminal_of(&st, &headers) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unknown terminal.",
        );
    };
    st.last_terminal_time = terminal_time(&headers);
    if let Some(message) = st.upgrade_required.clone() {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "terminal_upgrade_required",
            &message,
        );
    }
    if upload.events.iter().any(|e| e.seq < 1) {
        return refuse(StatusCode::BAD_REQUEST, "bad_event", "seq starts at 1");
    }
    let mut stored = 0;
    let mut already_had = 0;
    for e in upload.events {
        if st.fail_when_received == Some(st.received) {
            st.fail_when_received = None;
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The server failed; try again.",
            );
        }
        st.received += 1;
        let key = (terminal, e.seq);
        if let std::collections::btree_map::Entry::Vacant(slot) = st.events.entry(key) {
            slot.insert(e);
            stored += 1;
        } else {
            already_had += 1;
        }
    }
    let last_seq = st.last_seq(terminal);
    Json(EventAck {
        last_seq,
        stored,
        already_had,
        refused: 0,
    })
    .into_response()
}

impl FakeServer {
    pub fn start(state: ServerState) -> FakeServer {
        Self::start_shared(Arc::new(Mutex::new(state)), None)
    }

    /// Starts (again) on `addr` if given, with the state a previous instance held.
    pub fn start_shared(state: Shared, addr: Option<SocketAddr>) -> FakeServer {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let app = Router::new()
            .route("/api/v1/terminal/enroll", post(enroll))
            .route("/api/v1/terminal/snapshot", get(snapshot))
            .route("/api/v1/terminal/events", post(events))
            .with_state(state.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let bind = addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
                let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        FakeServer {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_code(&self, code: &str) {
        self.state.lock().unwrap().codes.insert(code.to_owned());
    }

    /// Stops listening; the state survives for a restart.
    pub fn stop(mut self) -> (Shared, SocketAddr) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (self.state.clone(), self.addr)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Keys and a server state with `n` active vouchers and the standard calendar.
pub struct World {
    pub root: KeyPair,
    pub signer: KeyPair,
    pub server_clock: ManualClock,
}

impl World {
    pub fn new() -> World {
        World {
            root: KeyPair::from_seed([11u8; 32]),
            signer: KeyPair::from_seed([22u8; 32]),
            server_clock: ManualClock::new(monday_noon()),
        }
    }

    pub fn server_state(&self, vouchers: Vec<SnapshotVoucher>) -> ServerState {
        let payload = TrustPayload {
            version: 1,
            keys: vec![trusted(&self.signer, i64::MAX / 2, i64::MAX / 2)],
        };
        let mut st = ServerState {
            root: self.root.clone(),
            trust_list: SignedTrustList::sign(&payload, &self.root),
            calendar: SchoolYear::default_for(NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()),
            next_calendar: None,
            meal_windows: standard_windows(),
            vouchers: vec![],
            version: 0,
            codes: HashSet::new(),
            terminals: HashMap::new(),
            events: BTreeMap::new(),
            received: 0,
            fail_when_received: None,
            unavailable: false,
            now: Arc::new(self.server_clock.clone()),
            last_terminal_time: None,
            versions_seen: Vec::new(),
            upgrade_required: None,
        };
        st.set_vouchers(vouchers);
        st
    }

    pub fn token(&self, voucher: Uuid, issued_at: i64) -> String {
        token_with(&self.signer, voucher, issued_at, 600)
    }
}

pub fn token_with(key: &KeyPair, voucher: Uuid, issued_at: i64, ttl: i64) -> String {
    token::sign(
        &TokenRequest {
            voucher_id: voucher,
            school_code: SCHOOL_CODE,
            issued_at: issued_at as u32,
            expires_at: (issued_at + ttl) as u32,
        },
        key,
    )
}

/// Enrolls a terminal in `dir` against `server` and opens it on `clock`.
pub async fn enrolled_terminal(
    dir: &Path,
    server: &FakeServer,
    code: &str,
    label: &str,
    clock: &ManualClock,
) -> Terminal {
    server.add_code(code);
    canteen_terminal::sync::enroll(
        dir,
        &server.url(),
        code,
        Some(label),
        &Settings::default(),
        Arc::new(clock.clone()),
    )
    .await
    .expect("enrollment succeeds");
    Terminal::open(dir, Settings::default(), Arc::new(clock.clone()))
        .await
        .expect("terminal opens")
}

#[path = "../../benches/support/frames.rs"]
pub mod frames;
#[allow(unused_imports)]
pub use frames::render_qr;

pub fn png_bytes(img: &image::GrayImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}
