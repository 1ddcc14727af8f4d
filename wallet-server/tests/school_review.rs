//! The school pages and their API: who sees which school (the access matrix, URL tampering
//! included), sign-in with rate limits, the meal views against seeded scans, CSV for Excel,
//! terminals, consent follow-ups, ratings and complaints.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{at, json, Fx, D, H, PASSWORD};
use serde_json::Value;
use wallet_server::eligibility::Category;
use wallet_server::nobd::build::{build_day, Coverage};
use wallet_server::staff::StaffError;
use wallet_server::store::roster::School;

struct Matrix {
    fx: Fx,
    schools: [School; 3],
    reports: [String; 3],
}

async fn matrix(pg: bool) -> Matrix {
    let fx = Fx::new(pg).await;
    fx.feedback_tables().await;
    let a = fx.school(1).await;
    let b = fx.school(2).await;
    let c = fx.school(3).await;
    for (t, s) in [("ta", &a), ("tb", &b), ("tc", &c)] {
        fx.terminal(t, s, "Асхана").await;
    }
    fx.staff("admin.a", "school_admin", &[&a]).await;
    fx.staff("authority.ab", "authority", &[&a, &b]).await;
    fx.staff("operator", "operator", &[]).await;
    let yesterday = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    build_day(
        fx.state().store.as_ref(),
        yesterday,
        None,
        Coverage::AllSchools,
        fx.now(),
    )
    .await
    .unwrap();
    let reports = [&a, &b, &c].map(|s| format!("{}-2026-11-22-r1", s.bin));
    Matrix {
        fx,
        schools: [a, b, c],
        reports,
    }
}

fn api_paths(bin: &str, report: &str) -> Vec<String> {
    [
        "meals",
        "meals?group=class",
        "meals?group=pupil",
        "meals?group=list",
        "meals.csv",
        "scans",
        "scans.csv?kind=duplicates",
        "anomalies",
        "consent",
        "consent.csv",
        "ratings",
        "complaints",
        "terminals",
        "reports",
    ]
    .iter()
    .map(|p| format!("/api/v1/school/schools/{bin}/{p}"))
    .chain([format!("/api/v1/school/schools/{bin}/reports/{report}")])
    .collect()
}

fn page_paths(bin: &str) -> Vec<String> {
    [
        "",
        "/meals",
        "/meals?group=pupil",
        "/scans",
        "/anomalies",
        "/consent",
        "/feedback",
        "/terminals",
        "/reports",
    ]
    .iter()
    .map(|p| format!("/school/s/{bin}{p}"))
    .collect()
}

both_backends!(access_matrix_for_the_three_roles, |pg| async move {
    let m = matrix(pg).await;
    let fx = &m.fx;
    // Which of schools A, B, C each role sees.
    let roles = [
        ("admin.a", [true, false, false]),
        ("authority.ab", [true, true, false]),
        ("operator", [true, true, true]),
    ];
    for (user, sees) in roles {
        let token = fx.login(user).await;
        for (i, school) in m.schools.iter().enumerate() {
            let want = if sees[i] {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            for path in api_paths(&school.bin, &m.reports[i]) {
                let (status, _, body) = fx.get(&path, Some(&token)).await;
                assert_eq!(
                    status,
                    want,
                    "{user} GET {path}: {}",
                    String::from_utf8_lossy(&body)
                );
                if !sees[i] {
                    assert_eq!(json(&body)["error"]["code"], "not_found");
                }
            }
            for path in page_paths(&school.bin) {
                let (status, _, html) = fx.page(&path, &token).await;
                assert_eq!(status, want, "{user} page {path}");
                assert!(!html.contains("<script"), "pages carry no script");
            }
        }
        // The school list and "me" show exactly the schools in scope.
        let (_, _, body) = fx.get("/api/v1/school/schools", Some(&token)).await;
        let bins: Vec<String> = json(&body)
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["bin"].as_str().unwrap().to_owned())
            .collect();
        let want: Vec<String> = m
            .schools
            .iter()
            .zip(sees)
            .filter(|(_, s)| *s)
            .map(|(sc, _)| sc.bin.clone())
            .collect();
        assert_eq!(bins, want, "{user}");
        let (status, headers, home) = fx.page("/school", &token).await;
        if sees.iter().filter(|s| **s).count() == 1 {
            assert_eq!(status, StatusCode::SEE_OTHER, "one school: straight to it");
            assert_eq!(
                headers[header::LOCATION],
                format!("/school/s/{}", m.schools[0].bin)
            );
        } else {
            for (school, seen) in m.schools.iter().zip(sees) {
                assert_eq!(
                    home.contains(&school.bin),
                    seen,
                    "{user} home lists {}",
                    school.bin
                );
            }
        }

        // Tampering: another school's report or terminal through an allowed school's URL.
        let a = &m.schools[0].bin;
        let (status, _, _) = fx
            .get(
                &format!("/api/v1/school/schools/{a}/reports/{}", m.reports[1]),
                Some(&token),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{user}: B's report under A");
        let (status, _, _) = fx
            .post(
                &format!("/api/v1/school/schools/{a}/terminals/tb/revoke"),
                Some(&token),
            )
            .await;
        let expect = if user == "authority.ab" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(status, expect, "{user}: B's terminal under A");
        // Unknown and malformed schools look the same as foreign ones.
        for bin in [
            common::bin(77),
            "000000000000".into(),
            "abc".into(),
            "../1".into(),
        ] {
            let (status, _, _) = fx
                .get(&format!("/api/v1/school/schools/{bin}/meals"), Some(&token))
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{user} {bin}");
        }
    }
    assert_eq!(
        fx.raw
            .count("SELECT COUNT(*) FROM terminals WHERE revoked_at IS NOT NULL")
            .await,
        0,
        "no tampered revocation went through"
    );

    // Managing terminals: the school's admin and operators; authorities only read.
    let [a, b, c] = &m.schools;
    for (user, bin, want) in [
        ("admin.a", &a.bin, StatusCode::CREATED),
        ("admin.a", &b.bin, StatusCode::NOT_FOUND),
        ("authority.ab", &a.bin, StatusCode::FORBIDDEN),
        ("authority.ab", &c.bin, StatusCode::NOT_FOUND),
        ("operator", &c.bin, StatusCode::CREATED),
    ] {
        let token = fx.login(user).await;
        let (status, _, _) = fx
            .post(
                &format!("/api/v1/school/schools/{bin}/enroll-codes"),
                Some(&token),
            )
            .await;
        assert_eq!(status, want, "{user} enroll code at {bin}");
    }
    assert_eq!(fx.raw.count("SELECT COUNT(*) FROM enroll_codes").await, 2);

    // Without a session: 401 from the API, the login page for pages.
    let (status, _, _) = fx
        .get(&format!("/api/v1/school/schools/{}/meals", a.bin), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, headers, _) = fx
        .page(&format!("/school/s/{}/meals", a.bin), "forged")
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/school/login");
    let (status, _, _) = fx
        .get(
            &format!("/api/v1/school/schools/{}/meals", a.bin),
            Some("forged"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
});

both_backends!(sign_in_sessions_and_rate_limits, |pg| async move {
    let fx = Fx::new(pg).await;
    let a = fx.school(1).await;
    fx.staff("admin.a", "school_admin", &[&a]).await;
    fx.staff("operator", "operator", &[]).await;
    let login = |user: &str, pw: &str| {
        common::json_request(
            Method::POST,
            "/api/v1/school/login",
            &serde_json::json!({"username": user, "password": pw}),
        )
    };

    let (status, headers, body) = fx.call(login("Admin.A", PASSWORD)).await;
    assert_eq!(status, StatusCode::OK, "usernames are case-insensitive");
    let token = json(&body)["session_token"].as_str().unwrap().to_owned();
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with(&format!("tamaq_staff={token};")));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert_eq!(json(&body)["role"], "school_admin");
    // Only the hash is stored.
    assert_eq!(
        fx.raw
            .count(&format!(
                "SELECT COUNT(*) FROM staff_sessions WHERE token_hash = '{token}'"
            ))
            .await,
        0
    );
    assert_eq!(fx.raw.count("SELECT COUNT(*) FROM staff_sessions").await, 1);
    let (status, _, body) = fx.get("/api/v1/school/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["schools"][0]["bin"], a.bin.as_str());

    // Wrong password, unknown user, bad body.
    let (status, _, body) = fx.call(login("admin.a", "Wrong-password-1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json(&body)["error"]["code"], "invalid_credentials");
    let (status, _, _) = fx.call(login("nobody", PASSWORD)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let bad = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/school/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"username\": 1}"))
        .unwrap();
    let (status, _, body) = fx.call(bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json(&body)["error"]["code"], "bad_request");

    // Five failures lock the username for the window, even with the right password.
    for _ in 0..4 {
        let (status, _, _) = fx.call(login("admin.a", "Wrong-password-1")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, body) = fx.call(login("admin.a", PASSWORD)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json(&body)["error"]["code"], "too_many_requests");
    // Other users from the same address still get in (6 failures < 20 per address).
    let (status, _, _) = fx.call(login("operator", PASSWORD)).await;
    assert_eq!(status, StatusCode::OK);
    // After the window the username works again.
    fx.state().clock.advance(15 * 60 + 1);
    let (status, _, _) = fx.call(login("admin.a", PASSWORD)).await;
    assert_eq!(status, StatusCode::OK);

    // Twenty failures from one address stop every username from there.
    for i in 0..20 {
        let (status, _, _) = fx
            .call(login(&format!("guess{i}"), "Wrong-password-1"))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = fx.call(login("operator", PASSWORD)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    fx.state().clock.advance(15 * 60 + 1);

    // Sessions expire after 12 hours; logout ends one at once.
    let (status, _, _) = fx.get("/api/v1/school/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    fx.state().clock.advance(12 * H);
    let (status, _, _) = fx.get("/api/v1/school/me", Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let fresh = fx.login("admin.a").await;
    let (status, headers, _) = fx.post("/api/v1/school/logout", Some(&fresh)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let (status, _, _) = fx.get("/api/v1/school/me", Some(&fresh)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The page form: a cookie and a redirect, or the form again with the reason.
    let form = |pw: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/school/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "username=operator&password={}",
                pw.replace(' ', "+")
            )))
            .unwrap()
    };
    let (status, headers, _) = fx.call(form(PASSWORD)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("HttpOnly"));
    let (status, _, body) = fx.call(form("nope nope nope")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8(body).unwrap().contains("<form"));
});

both_backends!(
    staff_add_checks_everything_and_writes_nothing_on_error,
    |pg| async move {
        let fx = Fx::new(pg).await;
        let a = fx.school(1).await;
        let store = fx.state().store.as_ref();
        let add = |user: &'static str,
                   role: &'static str,
                   schools: Vec<String>,
                   pw: &'static str| async move {
            wallet_server::staff::add_staff(store, user, role, &schools, pw, "cli", 1).await
        };
        let cases: Vec<(Result<_, StaffError>, &str)> = vec![
            (
                add("aigerim", "school_admin", vec![a.bin.clone()], "").await,
                "empty",
            ),
            (
                add("aigerim", "school_admin", vec![a.bin.clone()], "short1A").await,
                "at least",
            ),
            (
                add(
                    "aigerim",
                    "school_admin",
                    vec![a.bin.clone()],
                    "password1234",
                )
                .await,
                "commonly",
            ),
            (
                add("aigerim", "school_admin", vec![common::bin(50)], PASSWORD).await,
                "no school",
            ),
            (
                add("aigerim", "school_admin", vec!["123".into()], PASSWORD).await,
                "not a valid BIN",
            ),
            (
                add("aigerim", "school_admin", vec![], PASSWORD).await,
                "at least one --school",
            ),
            (
                add("aigerim", "operator", vec![a.bin.clone()], PASSWORD).await,
                "do not give --school",
            ),
            (
                add("aigerim", "principal", vec![a.bin.clone()], PASSWORD).await,
                "unknown role",
            ),
            (add("ai", "operator", vec![], PASSWORD).await, "not valid"),
        ];
        for (result, needle) in cases {
            let err = result.unwrap_err().to_string();
            assert!(err.contains(needle), "{err} lacks {needle:?}");
        }
        assert_eq!(fx.raw.count("SELECT COUNT(*) FROM staff_accounts").await, 0);
        assert_eq!(fx.raw.count("SELECT COUNT(*) FROM audit_log").await, 0);

        let account = add("aigerim", "school_admin", vec![a.bin.clone()], PASSWORD)
            .await
            .unwrap();
        assert!(account.password_hash.starts_with("$argon2id$"));
        assert!(!account.password_hash.contains(PASSWORD));
        let dup = add("Aigerim", "operator", vec![], PASSWORD)
            .await
            .unwrap_err();
        assert!(matches!(dup, StaffError::Exists(_)), "{dup}");
        let audit = store.audit_entries(10).await.unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].action, "staff.add");
        assert_eq!(audit[0].subject.as_deref(), Some("aigerim"));
        assert!(audit[0].detail.as_deref().unwrap().contains(&a.bin));
    }
);

fn parse_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "UTF-8 BOM for Excel");
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    assert!(text.ends_with("\r\n"));
    assert_eq!(
        text.matches('\n').count(),
        text.matches("\r\n").count(),
        "CRLF only"
    );
    csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

both_backends!(meal_views_match_the_scans, |pg| async move {
    let fx = Fx::new(pg).await;
    let s = common::seed(&fx).await;
    fx.staff("admin.a", "school_admin", &[&s.s1]).await;
    let token = fx.login("admin.a").await;
    let base = format!("/api/v1/school/schools/{}", s.s1.bin);
    let get = |q: String| {
        let fx = &fx;
        let token = token.clone();
        async move {
            let (status, _, body) = fx.get(&q, Some(&token)).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{q}: {}",
                String::from_utf8_lossy(&body)
            );
            json(&body)
        }
    };

    let v = get(format!("{base}/meals?from={D}&to={D}")).await;
    assert_eq!(
        v["rows"],
        serde_json::json!([{"service_day": D, "meals": 5, "duplicates": 1}])
    );
    let v = get(format!("{base}/meals?from=2026-11-22&to=2026-11-24")).await;
    let per_day: Vec<i64> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meals"].as_i64().unwrap())
        .collect();
    assert_eq!(per_day, vec![1, 5, 1]);
    let v = get(format!("{base}/meals?from={D}&to={D}&group=class")).await;
    let classes: Vec<(String, i64, i64)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                format!("{}{}", r["grade"], r["class_letter"].as_str().unwrap()),
                r["pupils"].as_i64().unwrap(),
                r["meals"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(classes, vec![("3А".into(), 2, 2), ("4Б".into(), 2, 3)]);
    let v = get(format!("{base}/meals?from={D}&to={D}&group=pupil&class=4б")).await;
    let pupils: Vec<(String, i64)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["first_name"].as_str().unwrap().to_owned(),
                r["meals"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(pupils, vec![("Имя13".into(), 2), ("Имя14".into(), 1)]);
    let v = get(format!("{base}/meals?from={D}&to={D}&group=list")).await;
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["meal_kind"], "breakfast");
    assert_eq!(rows[0]["terminal_label"], "Асхана 2");
    let v = get(format!(
        "{base}/meals?from={D}&to={D}&group=list&voucher={}",
        s.v["p1"]
    ))
    .await;
    assert_eq!(
        v["rows"].as_array().unwrap().len(),
        1,
        "the duplicate is not a second meal"
    );

    let v = get(format!("{base}/scans?from={D}&to={D}")).await;
    let dups = v["duplicates"].as_array().unwrap();
    assert_eq!(dups.len(), 2);
    assert_eq!(dups.iter().filter(|d| d["counted"] == true).count(), 1);
    assert!(dups.iter().all(|d| d["voucher_id"] == s.v["p1"].as_str()));
    let not_counted = dups.iter().find(|d| d["counted"] == false).unwrap();
    assert_eq!(not_counted["duplicate"], true, "the one the server marked");
    let rejected = v["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 4);
    let served_twice: Vec<&Value> = rejected
        .iter()
        .filter(|r| r["verdict"] == "already_served")
        .collect();
    assert!(served_twice.iter().all(|r| r["already_served_count"] == 2));
    let repeated = v["repeated_already_served"].as_array().unwrap();
    assert_eq!(repeated.len(), 1);
    assert_eq!(repeated[0]["voucher_id"], s.v["p1"].as_str());
    assert_eq!(repeated[0]["scans"], 2);
    let verdicts: Vec<(String, i64)> = v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["verdict"].as_str().unwrap().to_owned(),
                r["scans"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("already_served".into(), 2),
            ("bad_format".into(), 1),
            ("expired".into(), 1),
            ("ok".into(), 6)
        ]
    );

    // CSV for Excel: BOM, CRLF, `;`, headers in the asked language, the same numbers.
    let (status, headers, body) = fx
        .get(
            &format!("{base}/meals.csv?from={D}&to={D}&group=pupil&lang=ru"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let rows = parse_csv(&body);
    assert_eq!(rows[0][0], "Ученик");
    assert_eq!(rows.len(), 5);
    let total: i64 = rows[1..].iter().map(|r| r[2].parse::<i64>().unwrap()).sum();
    assert_eq!(total, 5);
    let (_, _, body) = fx
        .get(
            &format!("{base}/meals.csv?from={D}&to={D}&lang=kk"),
            Some(&token),
        )
        .await;
    let rows = parse_csv(&body);
    assert_eq!(
        rows,
        vec![vec!["Күні", "Тамақ", "Қайталау"], vec![D, "5", "1"]]
    );
    let (_, _, body) = fx
        .get(
            &format!("{base}/scans.csv?from={D}&to={D}&kind=rejected&lang=ru"),
            Some(&token),
        )
        .await;
    let rows = parse_csv(&body);
    assert_eq!(rows.len(), 5);
    assert!(rows
        .iter()
        .any(|r| r[2] == "Уже питался сегодня" && r[7] == "2"));
    let (status, _, _) = fx
        .get(&format!("{base}/scans.csv?kind=everything"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Bad filters are refused with the reason.
    for q in [
        "from=2026-11-24&to=2026-11-23",
        "class=A3",
        "group=week",
        "from=yesterday",
    ] {
        let (status, _, body) = fx.get(&format!("{base}/meals?{q}"), Some(&token)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(json(&body)["error"]["code"], "bad_filter");
        assert!(
            json(&body)["error"]["message"].as_str().unwrap().len() > 20,
            "says why"
        );
    }
});

both_backends!(
    consent_follow_ups_list_the_ended_processes,
    |pg| async move {
        let fx = Fx::new(pg).await;
        let a = fx.school(1).await;
        let b = fx.school(2).await;
        let t = at(10, 0);
        for (n, school, status) in [
            (1, &a, "no_phone"),
            (2, &a, "refused"),
            (3, &a, "expired"),
            (4, &a, "consented"),
            (5, &a, "requested"),
            (6, &b, "refused"),
        ] {
            let (id, _) = fx.pupil(n, school, 2, "А", Category::Orphan, t).await;
            fx.consent(id, status, t + i64::from(n)).await;
        }
        fx.staff("admin.a", "school_admin", &[&a]).await;
        let token = fx.login("admin.a").await;
        let base = format!("/api/v1/school/schools/{}", a.bin);
        let (_, _, body) = fx.get(&format!("{base}/consent"), Some(&token)).await;
        let statuses: Vec<String> = json(&body)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            statuses,
            vec!["expired", "refused", "no_phone"],
            "newest first, this school only"
        );
        let (_, _, body) = fx
            .get(&format!("{base}/consent?status=refused"), Some(&token))
            .await;
        let rows = json(&body);
        assert_eq!(rows.as_array().unwrap().len(), 1);
        assert_eq!(rows[0]["first_name"], "Имя2");
        assert_eq!(rows[0]["class_letter"], "А");
        let (status, _, _) = fx
            .get(&format!("{base}/consent?status=consented"), Some(&token))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (_, _, body) = fx
            .get(&format!("{base}/consent.csv?lang=kk"), Some(&token))
            .await;
        let rows = parse_csv(&body);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1][2], "Жауап болмады");
    }
);

both_backends!(ratings_and_complaints_per_school, |pg| async move {
    let fx = Fx::new(pg).await;
    fx.feedback_tables().await;
    let a = fx.school(1).await;
    let b = fx.school(2).await;
    let t = at(10, 0);
    let (_, v1) = fx.pupil(1, &a, 3, "А", Category::Asp, t).await;
    let (_, v2) = fx.pupil(2, &a, 3, "Б", Category::Asp, t).await;
    let (_, v3) = fx.pupil(3, &b, 3, "А", Category::Asp, t).await;
    // Monday and Friday of one week, Monday of the week before.
    fx.rating(&v1, "2026-11-23", 5, Some("Дәмді")).await;
    fx.rating(&v2, "2026-11-23", 2, Some("Суық")).await;
    fx.rating(&v1, "2026-11-20", 4, None).await;
    fx.rating(&v2, "2026-11-16", 3, Some("")).await;
    fx.rating(&v3, "2026-11-23", 1, Some("другая школа")).await;
    fx.complaint(&v1, "Порция маленькая", "queued", t).await;
    fx.complaint(&v3, "не наша", "queued", t).await;
    fx.staff("authority.a", "authority", &[&a]).await;
    let token = fx.login("authority.a").await;
    let base = format!("/api/v1/school/schools/{}", a.bin);
    let (status, _, body) = fx
        .get(
            &format!("{base}/ratings?from=2026-11-01&to={D}"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let v = json(&body);
    assert_eq!(
        v["by_day"],
        serde_json::json!([
            {"service_day": "2026-11-16", "ratings": 1, "average": 3.0},
            {"service_day": "2026-11-20", "ratings": 1, "average": 4.0},
            {"service_day": "2026-11-23", "ratings": 2, "average": 3.5}
        ])
    );
    assert_eq!(
        v["by_week"],
        serde_json::json!([
            {"week": "2026-W47", "starts": "2026-11-16", "ratings": 2, "average": 3.5},
            {"week": "2026-W48", "starts": "2026-11-23", "ratings": 2, "average": 3.5}
        ])
    );
    let comments: Vec<&str> = v["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["comment"].as_str().unwrap())
        .collect();
    assert_eq!(comments.len(), 2);
    assert!(comments.contains(&"Дәмді") && comments.contains(&"Суық"));
    let (_, _, body) = fx.get(&format!("{base}/complaints"), Some(&token)).await;
    let c = json(&body);
    assert_eq!(c.as_array().unwrap().len(), 1);
    assert_eq!(c[0]["text"], "Порция маленькая");
    assert_eq!(c[0]["status"], "queued");
    let (status, _, html) = fx
        .page(&format!("/school/s/{}/feedback?lang=ru", a.bin), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Порция маленькая")
            && html.contains("Суық")
            && !html.contains("другая школа")
    );
});

both_backends!(terminals_enrollment_codes_and_revocation, |pg| async move {
    let fx = Fx::new(pg).await;
    let a = fx.school(1).await;
    fx.terminal("ta1", &a, "Асхана 1").await;
    fx.terminal("ta2", &a, "Асхана 2").await;
    fx.staff("admin.a", "school_admin", &[&a]).await;
    let token = fx.login("admin.a").await;
    let base = format!("/api/v1/school/schools/{}", a.bin);
    let now = fx.now();

    let (status, _, body) = fx.post(&format!("{base}/enroll-codes"), Some(&token)).await;
    assert_eq!(status, StatusCode::CREATED);
    let v = json(&body);
    let code = v["code"].as_str().unwrap();
    assert_eq!(code.len(), 10);
    assert!(wallet_server::terminal_sync::credentials::normalize_code(code).is_some());
    assert_eq!(v["expires_at"], now + 24 * H);
    let hash = wallet_server::review::terminals::enroll_code_hash(code);
    assert_eq!(
        fx.raw
            .count(&format!(
                "SELECT COUNT(*) FROM enroll_codes WHERE code_hash = '{hash}' AND created_by = 'admin.a'
                 AND expires_at = {} AND used_at IS NULL AND school_code = {}",
                now + 24 * H,
                a.code
            ))
            .await,
        1
    );
    assert_eq!(
        fx.raw
            .count(&format!(
                "SELECT COUNT(*) FROM enroll_codes WHERE code_hash = '{code}'"
            ))
            .await,
        0,
        "the code itself is not stored"
    );

    let (_, _, body) = fx.get(&format!("{base}/terminals"), Some(&token)).await;
    let v = json(&body);
    assert_eq!(v["terminals"].as_array().unwrap().len(), 2);
    assert_eq!(v["terminals"][0]["clock_offset"], 3);
    assert_eq!(v["enroll_codes"].as_array().unwrap().len(), 1);
    assert!(v["enroll_codes"][0].get("code").is_none());

    let (status, _, body) = fx
        .post(&format!("{base}/terminals/ta1/revoke"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["revoked_at"], now);
    fx.state().clock.advance(100);
    let (_, _, body) = fx
        .post(&format!("{base}/terminals/ta1/revoke"), Some(&token))
        .await;
    assert_eq!(
        json(&body)["revoked_at"],
        now,
        "the first revocation time stays"
    );
    let (status, _, _) = fx
        .post(&format!("{base}/terminals/nope/revoke"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let actions: Vec<String> = fx
        .state()
        .store
        .audit_entries(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.contains(&"terminal.enroll_code".to_owned()));
    assert_eq!(
        actions.iter().filter(|a| *a == "terminal.revoke").count(),
        2
    );

    // The same through the page: the new code is shown once; revoke redirects back.
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/school/s/{}/terminals/enroll-code", a.bin))
        .header(
            header::COOKIE,
            format!("tamaq_staff={token}; tamaq_lang=kk"),
        )
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = fx.call(req).await;
    assert_eq!(status, StatusCode::CREATED);
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("Жаңа тіркеу коды"), "Kazakh page");
    assert_eq!(fx.raw.count("SELECT COUNT(*) FROM enroll_codes").await, 2);
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/school/s/{}/terminals/ta2/revoke", a.bin))
        .header(header::COOKIE, format!("tamaq_staff={token}"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = fx.call(req).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        format!("/school/s/{}/terminals", a.bin)
    );
    assert_eq!(
        fx.raw
            .count("SELECT COUNT(*) FROM terminals WHERE revoked_at IS NOT NULL")
            .await,
        2
    );
});

both_backends!(pages_speak_kazakh_and_russian, |pg| async move {
    let fx = Fx::new(pg).await;
    let s = common::seed(&fx).await;
    fx.staff("operator", "operator", &[]).await;
    let token = fx.login("operator").await;
    let path = format!("/school/s/{}?from=2026-11-20&to={D}", s.s1.bin);
    let (status, headers, html) = fx.page(&path, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert!(
        html.contains("<svg") && html.contains("<title>2026-11-23: 5</title>"),
        "chart of the day's 5 meals"
    );
    assert!(html.contains("Обзор"), "Russian by default");

    let (status, headers, _) = fx
        .get(
            &format!(
                "/school/lang/kk?back={}",
                path.replace('?', "%3F").replace('&', "%26")
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], path.as_str());
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("tamaq_lang=kk"));
    let req = Request::builder()
        .uri(&path)
        .header(
            header::COOKIE,
            format!("tamaq_staff={token}; tamaq_lang=kk"),
        )
        .body(Body::empty())
        .unwrap();
    let (_, _, body) = fx.call(req).await;
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("Шолу") && html.contains("lang=\"kk\""));
    for section in [
        "meals?group=list",
        "scans",
        "anomalies",
        "consent",
        "terminals",
        "reports",
    ] {
        let (status, _, html) = fx
            .page(
                &format!("/school/s/{}/{section}&lang=kk", s.s1.bin).replacen(
                    '&',
                    "?",
                    usize::from(!section.contains('?')),
                ),
                &token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{section}");
        assert!(html.contains("lang=\"kk\""), "{section}");
    }
    let (_, _, html) = fx
        .page(
            &format!("/school/s/{}/scans?from={D}&to={D}", s.s1.bin),
            &token,
        )
        .await;
    assert!(
        html.contains("class=\"warn\"") && html.contains("(×2)"),
        "repeated already_served is highlighted"
    );
});
