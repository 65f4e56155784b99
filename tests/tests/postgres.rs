//! The PostgreSQL connector against a real PostgreSQL (see `bridge_tests::postgres`): sync order and
//! completeness, the recommended indexes, lookups, SQL injection, statement timeouts, restarts, an
//! unreachable database, refused credentials, a contract the database does not fit, and TLS.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bridge::connectors::postgres::sql::{self, CatalogColumn, CatalogRelation, SORT_KEY_SQL};
use bridge::sync::budget::Unlimited;
use bridge::sync::{cmp_ids, SyncKey};
use bridge::talkdesk::Contact;
use bridge::App;
use bridge_tests::postgres::{contract_data, load, table_contents, PgServer};
use bridge_tests::prepared_app;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

fn latest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn pairs(pg: &PgServer, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p = pg.app_pairs();
    for (k, v) in extra {
        p.retain(|(name, _)| name != k);
        p.push((k.to_string(), v.to_string()));
    }
    p
}

async fn app(pg: &PgServer, extra: &[(&str, &str)]) -> App {
    prepared_app(&pairs(pg, extra))
        .await
        .unwrap_or_else(|e| panic!("the app starts: {e}"))
}

async fn page(app: &App, meta: &Value, now: DateTime<Utc>) -> (u16, Value) {
    let body = json!({"auth": {}, "meta": meta}).to_string();
    let r = app.contacts(body.as_bytes(), &Unlimited, now).await;
    (r.status, serde_json::from_str(&r.body).unwrap_or(Value::Null))
}

/// One sync run to its end: the contacts in the order received and the final checkpoint.
async fn sync_run(app: &App, checkpoint: Option<&str>, now: DateTime<Utc>) -> (Vec<Contact>, String, usize) {
    let mut meta = json!({});
    if let Some(cp) = checkpoint {
        meta["synchronization_checkpoint"] = json!(cp);
    }
    let mut contacts = Vec::new();
    for pages in 1..10_000 {
        let (status, body) = page(app, &meta, now).await;
        assert_eq!(status, 200, "{body}");
        contacts.extend(serde_json::from_value::<Vec<Contact>>(body["contacts"].clone()).unwrap());
        let cp = body["synchronization_checkpoint"].as_str().unwrap().to_string();
        match body.get("next_offset").and_then(Value::as_str) {
            Some(offset) => meta = json!({"offset": offset, "synchronization_checkpoint": checkpoint}),
            None => return (contacts, cp, pages),
        }
    }
    panic!("the sync did not end");
}

fn assert_engine_order(contacts: &[Contact], table: &HashMap<String, (DateTime<Utc>, Contact)>) {
    let keys: Vec<SyncKey> = contacts.iter().map(|c| SyncKey::new(table[&c.id].0, c.id.clone())).collect();
    for w in keys.windows(2) {
        assert!(w[0] < w[1], "out of (updated_at, id) order: {:?} then {:?}", w[0], w[1]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_then_incremental_sync_returns_every_row_once_in_the_engines_order() {
    let pg = PgServer::start().await;
    let data = contract_data(700, 200, 4, latest());
    load(&pg, &data).await;
    let app = app(&pg, &[("BRIDGE_PAGE_SIZE", "60"), ("POSTGRES_PAGE_SIZE", "17")]).await;
    let now = latest() + chrono::Duration::days(1);

    let (contacts, checkpoint, pages) = sync_run(&app, None, now).await;
    let table = table_contents(&pg.admin().await).await;
    assert!(pages >= 12, "{pages} pages");
    assert_eq!(contacts.len(), table.len(), "every row once");
    assert_engine_order(&contacts, &table);
    for c in &contacts {
        assert_eq!(&table[&c.id].1, c, "the contact as the table holds it");
    }

    // Changes after the run's bound, some sharing one instant: the incremental run returns exactly them.
    let admin = pg.admin().await;
    let changed_at = now + chrono::Duration::seconds(10);
    let ids: Vec<&str> = contacts.iter().step_by(97).map(|c| c.id.as_str()).collect();
    for id in &ids {
        admin
            .execute(
                "UPDATE talkdesk_contacts SET name = 'Renamed', updated_at = $2 WHERE id = $1",
                &[id, &changed_at],
            )
            .await
            .unwrap();
    }
    admin
        .execute(
            "INSERT INTO talkdesk_contacts (id, updated_at, name) VALUES ('new-1', $1, 'New')",
            &[&changed_at],
        )
        .await
        .unwrap();
    let (again, _, _) = sync_run(&app, Some(&checkpoint), now + chrono::Duration::minutes(1)).await;
    let mut got: Vec<&str> = again.iter().map(|c| c.id.as_str()).collect();
    let mut want: Vec<&str> = ids.clone();
    want.push("new-1");
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(again.iter().all(|c| c.name == "Renamed" || c.id == "new-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_orders_sort_keys_exactly_as_the_engine_orders_ids() {
    let pg = PgServer::start().await;
    let admin = pg.admin().await;
    admin.batch_execute("CREATE TABLE ids (id text)").await.unwrap();
    let mut corpus: Vec<String> = [
        "0", "00", "7", "007", "07", "9", "10", "0010", "100", "a", "A", "b", "B", "a-1", "a1", "a_1", "10a", "-1", "+1", " 1", "1 ", "é",
        "e", "f", "E", "z", "Z", "١٢", "１２", "😀", "ß", "ss", "crm-9", "CRM-10", "crm-10",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    corpus.extend([
        "9".repeat(38),
        "9".repeat(39),
        "1".repeat(38),
        "0".repeat(40),
        format!("0{}", "9".repeat(38)),
    ]);
    for id in &corpus {
        admin.execute("INSERT INTO ids VALUES ($1)", &[id]).await.unwrap();
    }
    let by_key: Vec<String> = admin
        .query(&format!("SELECT id FROM ids ORDER BY {SORT_KEY_SQL}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut engine = corpus.clone();
    engine.sort_by(|a, b| cmp_ids(a, b));
    assert_eq!(by_key, engine);
    // The database's own collation disagrees with the engine: the sort key is what makes them agree.
    let by_collation: Vec<String> = admin
        .query("SELECT id FROM ids ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_ne!(
        by_collation, engine,
        "the test database's default collation should not be byte order"
    );
}

fn contract_relation(name: &str, columns: &[(&str, &str, &str, &str)]) -> CatalogRelation {
    CatalogRelation {
        schema: "public".into(),
        name: name.into(),
        can_select: true,
        columns: columns
            .iter()
            .map(|(n, t, c, e)| CatalogColumn {
                name: n.to_string(),
                type_name: t.to_string(),
                category: c.to_string(),
                element_category: e.to_string(),
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recommended_indexes_serve_every_statement_without_a_sort() {
    let pg = PgServer::start().await;
    load(&pg, &contract_data(3000, 300, 8, latest())).await;
    let contacts = contract_relation(
        "talkdesk_contacts",
        &[
            ("id", "text", "S", ""),
            ("updated_at", "timestamptz", "D", ""),
            ("name", "text", "S", ""),
            ("emails", "_text", "A", "S"),
            ("phones", "_text", "A", "S"),
        ],
    );
    let interactions = contract_relation(
        "talkdesk_interactions",
        &[
            ("id", "text", "S", ""),
            ("contact_id", "text", "S", ""),
            ("type", "text", "S", ""),
            ("date", "timestamptz", "D", ""),
        ],
    );
    let st = sql::statements(&contacts, &interactions).unwrap();
    let admin = pg.admin().await;
    // Only index paths, and a sort only if nothing else gives the order: what remains is what the indexes
    // can do (the planner picks among them by cost on real data).
    admin
        .batch_execute("SET enable_seqscan = off; SET enable_sort = off")
        .await
        .unwrap();
    let explain = |statement: String, params: Vec<String>| {
        let admin = &admin;
        async move {
            // Literal values in place of the parameters, so the plan is the one the values get.
            let mut text = statement;
            for (i, p) in params.iter().enumerate().rev() {
                text = text.replace(&format!("${}", i + 1), p);
            }
            let rows = admin.query(&format!("EXPLAIN {text}"), &[]).await.unwrap();
            rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
        }
    };
    let t = "'2025-01-01 00:00:00+00'::timestamptz".to_string();
    let until = "'2026-06-01 12:00:00+00'::timestamptz".to_string();
    admin.batch_execute("SET enable_bitmapscan = off").await.unwrap();
    let keyset = explain(
        st.contacts_after_key.clone(),
        vec![
            t.clone(),
            "'0000000000000000000000000000000000000100123100123'".into(),
            until.clone(),
            "500".into(),
        ],
    )
    .await;
    assert!(keyset.contains("Index Scan using talkdesk_contacts_sync"), "{keyset}");
    assert!(
        keyset.contains("Index Cond: ((ROW(updated_at,"),
        "the keyset is an index condition: {keyset}"
    );
    assert!(!keyset.contains("Sort"), "the index gives the order: {keyset}");
    let first = explain(st.contacts_from_start.clone(), vec![until.clone(), "500".into()]).await;
    assert!(
        first.contains("Index Scan using talkdesk_contacts_sync") && !first.contains("Sort"),
        "{first}"
    );
    admin.batch_execute("RESET enable_bitmapscan").await.unwrap();
    let emails = explain(
        st.people_by_emails.clone().unwrap(),
        vec!["ARRAY['jane@example.com']".into(), "100".into()],
    )
    .await;
    assert!(emails.contains("talkdesk_contacts_emails"), "{emails}");
    let phones = explain(
        st.people_by_phones.clone().unwrap(),
        vec!["ARRAY['+14155550100']".into(), "100".into()],
    )
    .await;
    assert!(phones.contains("talkdesk_contacts_phones"), "{phones}");
    let by_id = explain(st.person_by_id.clone(), vec!["'100123'".into()]).await;
    assert!(by_id.contains("talkdesk_contacts_pkey"), "{by_id}");
    let of = explain(
        st.interactions_of.clone(),
        vec!["ARRAY['100123']".into(), "ARRAY['ticket','call']".into(), "100".into()],
    )
    .await;
    assert!(of.contains("talkdesk_interactions_contact"), "{of}");
}

async fn lookup(app: &App, meta: Value, data: Value) -> (u16, Value) {
    let body = json!({"auth": {}, "meta": meta, "data": data}).to_string();
    let r = app.interactions(body.as_bytes()).await;
    (r.status, serde_json::from_str(&r.body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_find_interactions_by_id_case_insensitive_email_and_e164_phone() {
    let pg = PgServer::start().await;
    pg.create_contract().await;
    let admin = pg.admin().await;
    admin
        .batch_execute(
            "INSERT INTO talkdesk_contacts (id, updated_at, name, emails, phones) VALUES
               ('c1', '2026-01-01Z', 'Jane Roe', '{jane@acme.test}', '{+14155550100}'),
               ('c2', '2026-01-02Z', 'John Roe', '{john@acme.test}', '{+442079460001}'),
               ('c3', '2026-01-03Z', 'Jane Roe', '{other@acme.test}', '{}');
             INSERT INTO talkdesk_interactions (id, contact_id, type, subject, description, date, url, priority, status) VALUES
               ('t1', 'c1', 'ticket', 'Old', 'x', '2026-01-01Z', 'https://crm/t1', 'HIGH', 'solved'),
               ('t2', 'c1', 'Call', NULL, NULL, '2026-02-01Z', NULL, 'P1', 'weird'),
               ('t3', 'c2', 'ticket', 'Johns', '', '2026-03-01Z', 'https://crm/t3', 'low', 'open'),
               ('t4', 'c3', 'ticket', 'Namesake', '', '2026-03-02Z', 'https://crm/t4', 'low', 'open');",
        )
        .await
        .unwrap();
    let app = app(&pg, &[]).await;

    let (status, by_id) = lookup(&app, json!({}), json!({"contact_external_id": "c1"})).await;
    assert_eq!(status, 200, "{by_id}");
    let ids: Vec<&str> = by_id.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["t2", "t1"], "newest first");
    assert_eq!(by_id[0]["type"], "call");
    assert_eq!(
        (by_id[0]["priority"].as_str(), by_id[0]["status"].as_str()),
        (Some("none"), Some("open"))
    );
    assert_eq!(by_id[0]["subject"], "Call #t2");
    assert_eq!(
        (by_id[1]["priority"].as_str(), by_id[1]["status"].as_str()),
        (Some("high"), Some("solved"))
    );

    let (_, by_email) = lookup(&app, json!({}), json!({"contact_emails": ["JANE@Acme.Test"]})).await;
    assert_eq!(by_email.as_array().unwrap().len(), 2, "{by_email}");
    let (_, by_phone) = lookup(&app, json!({}), json!({"contact_phones": ["(415) 555-0100"]})).await;
    assert_eq!(by_phone.as_array().unwrap().len(), 2, "{by_phone}");
    let (_, uk) = lookup(&app, json!({}), json!({"contact_phones": ["+44 20 7946 0001"]})).await;
    assert_eq!(uk[0]["id"], "t3");
    let (_, typed) = lookup(&app, json!({"interaction_types": ["ticket"]}), json!({"contact_external_id": "c1"})).await;
    assert_eq!(typed.as_array().unwrap().len(), 1);
    let (_, name_only) = lookup(&app, json!({}), json!({"contact_name": "Jane Roe"})).await;
    assert_eq!(name_only, json!([]), "a name alone finds nobody");
    let (_, nobody) = lookup(&app, json!({}), json!({"contact_external_id": "nope", "contact_emails": ["x@y.z"]})).await;
    assert_eq!(nobody, json!([]));
}

/// Everything in the two tables, as one digest, and the relations that exist.
async fn fingerprint(pg: &PgServer) -> (String, String, i64) {
    let admin = pg.admin().await;
    let row = admin
        .query_one(
            "SELECT (SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) FROM talkdesk_contacts t),
                    (SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) FROM talkdesk_interactions t),
                    (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace)",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_injection_in_every_request_field_answers_200_or_400_and_changes_nothing() {
    let pg = PgServer::start().await;
    load(&pg, &contract_data(120, 20, 5, latest())).await;
    let app = app(&pg, &[("BRIDGE_PAGE_SIZE", "25")]).await;
    let now = latest() + chrono::Duration::days(1);
    let before = fingerprint(&pg).await;
    let (first, _) = page(&app, &json!({}), now).await;
    assert_eq!(first, 200);
    let long = "'".repeat(20_000);
    let corpus = [
        "'; DROP TABLE talkdesk_contacts; --",
        "\"; DROP TABLE talkdesk_interactions; --",
        "1' OR '1'='1",
        "1) OR (1=1",
        "$1",
        "$$; DELETE FROM talkdesk_contacts; $$",
        "\\'; TRUNCATE talkdesk_contacts; --",
        "x\u{0}y",
        "%",
        "_",
        "*/ SELECT pg_sleep(10); /*",
        "'); COPY talkdesk_contacts TO PROGRAM 'touch /tmp/pwned'; --",
        "E'\\x27'",
        "😀'",
        long.as_str(),
    ];
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for p in corpus {
        let email = format!("{p}@acme.test");
        let requests: Vec<(&str, Value)> = vec![
            ("/contacts", json!({"auth": {"password": p, p: p}, "meta": {}})),
            ("/contacts", json!({"auth": {}, "meta": {"offset": p}})),
            ("/contacts", json!({"auth": {}, "meta": {"synchronization_checkpoint": p}})),
            ("/contacts", json!({"auth": {}, "meta": {"context": {p: p}}})),
            ("/interactions", json!({"auth": {}, "data": {"contact_external_id": p}})),
            ("/interactions", json!({"auth": {}, "data": {"contact_emails": [p, email]}})),
            (
                "/interactions",
                json!({"auth": {}, "data": {"contact_phones": [p, format!("+1415555{p}")]}}),
            ),
            ("/interactions", json!({"auth": {}, "data": {"contact_name": p}})),
            (
                "/interactions",
                json!({"auth": {"password": p}, "meta": {"interaction_types": [p, "ticket"]}, "data": {"contact_external_id": "100002"}}),
            ),
        ];
        for (path, body) in requests {
            let bytes = body.to_string();
            let r = if path == "/contacts" {
                app.contacts(bytes.as_bytes(), &Unlimited, now).await
            } else {
                app.interactions(bytes.as_bytes()).await
            };
            assert!(r.status == 200 || r.status == 400, "{path} {body}: {} {}", r.status, r.body);
            let v: Value = serde_json::from_str(&r.body).expect("a JSON body");
            if r.status == 400 {
                assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string(), "{v}");
            }
            *statuses.entry(r.status).or_default() += 1;
        }
    }
    assert!(statuses[&200] > 50 && statuses[&400] > 10, "{statuses:?}");
    assert_eq!(fingerprint(&pg).await, before, "the database changed");
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    let (after, body) = page(&app, &json!({}), now).await;
    assert_eq!(after, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_its_deadline_answers_504_and_is_cancelled_on_the_server() {
    let pg = PgServer::start().await;
    load(&pg, &contract_data(30, 0, 6, latest())).await;
    let admin = pg.admin().await;
    admin
        .batch_execute("CREATE VIEW slow_contacts AS SELECT c.* FROM talkdesk_contacts c CROSS JOIN (SELECT pg_sleep(30)) s")
        .await
        .unwrap();
    pg.grant_read().await;
    let app = app(
        &pg,
        &[
            ("POSTGRES_CONTACTS_RELATION", "slow_contacts"),
            ("POSTGRES_STATEMENT_TIMEOUT_MS", "300"),
        ],
    )
    .await;
    let (status, body) = page(&app, &json!({}), latest() + chrono::Duration::days(1)).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "upstream_timeout");
    // The cancel request stopped the 30-second statement (waited for, not timed).
    let mut still_running = i64::MAX;
    for _ in 0..100 {
        still_running = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%slow_contacts%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if still_running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(still_running, 0, "the statement still runs on the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_statement_mid_page_returns_a_partial_page_that_resumes_exactly() {
    let pg = PgServer::start().await;
    pg.create_contract().await;
    let admin = pg.admin().await;
    for i in 0..40 {
        admin
            .execute(
                "INSERT INTO talkdesk_contacts (id, updated_at, name) VALUES ($1, $2, $1)",
                &[&format!("p{i:03}"), &(latest() - chrono::Duration::seconds(100 - i))],
            )
            .await
            .unwrap();
    }
    // Reading contact p015 takes 30 s: the second statement of the first page meets it.
    admin
        .batch_execute(&format!(
            "CREATE FUNCTION slow_for(id text) RETURNS boolean LANGUAGE sql VOLATILE AS
               $$ SELECT $1 <> 'p015' OR (SELECT true FROM pg_sleep(30)) $$;
             CREATE VIEW paced_contacts AS SELECT * FROM talkdesk_contacts WHERE slow_for(id);
             ANALYZE talkdesk_contacts;
             ALTER ROLE \"{}\" SET enable_seqscan = off;",
            pg.app_user
        ))
        .await
        .unwrap();
    pg.grant_read().await;
    let app = app(
        &pg,
        &[
            ("POSTGRES_CONTACTS_RELATION", "paced_contacts"),
            ("POSTGRES_STATEMENT_TIMEOUT_MS", "500"),
            ("POSTGRES_PAGE_SIZE", "10"),
            ("BRIDGE_PAGE_SIZE", "30"),
        ],
    )
    .await;
    let now = latest() + chrono::Duration::days(1);
    let (status, first) = page(&app, &json!({}), now).await;
    assert_eq!(status, 200, "{first}");
    let got: Vec<&str> = first["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        (0..10).map(|i| format!("p{i:03}")).collect::<Vec<_>>(),
        "the rows read before the slow statement"
    );
    let offset = first["next_offset"].as_str().expect("a partial page resumes").to_string();

    admin
        .batch_execute("CREATE OR REPLACE FUNCTION slow_for(id text) RETURNS boolean LANGUAGE sql VOLATILE AS $$ SELECT true $$")
        .await
        .unwrap();
    let mut meta = json!({"offset": offset});
    let mut rest = Vec::new();
    loop {
        let (status, body) = page(&app, &meta, now).await;
        assert_eq!(status, 200, "{body}");
        rest.extend(
            body["contacts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_string()),
        );
        match body.get("next_offset").and_then(Value::as_str) {
            Some(o) => meta = json!({"offset": o}),
            None => break,
        }
    }
    assert_eq!(rest, (10..40).map(|i| format!("p{i:03}")).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_between_pages_loses_nothing() {
    let pg = PgServer::start().await;
    load(&pg, &contract_data(400, 120, 7, latest())).await;
    let app = app(&pg, &[("BRIDGE_PAGE_SIZE", "50"), ("POSTGRES_PAGE_SIZE", "20")]).await;
    let now = latest() + chrono::Duration::days(1);
    let mut meta = json!({});
    let mut ids = Vec::new();
    let mut restarts = 0;
    loop {
        let (status, body) = page(&app, &meta, now).await;
        assert_eq!(status, 200, "{body}");
        ids.extend(
            body["contacts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_string()),
        );
        let Some(offset) = body.get("next_offset").and_then(Value::as_str) else {
            break;
        };
        if restarts < 3 {
            pg.restart().await;
            restarts += 1;
        }
        meta = json!({"offset": offset});
    }
    assert_eq!(restarts, 3);
    let table = table_contents(&pg.admin().await).await;
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no contact twice");
    assert_eq!(ids.len(), table.len(), "every contact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_answers_503_with_retry_after() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://bridge:pw@127.0.0.1:{port}/crm");
    let app = prepared_app(&[
        ("BRIDGE_CONNECTOR".to_string(), "postgres".to_string()),
        ("BRIDGE_TOKEN_KEY".into(), bridge_tests::postgres::TOKEN_KEY.into()),
        ("POSTGRES_URL".into(), url),
        ("POSTGRES_SSLMODE".into(), "disable".into()),
    ])
    .await
    .expect("an unreachable database does not fail INIT");
    let r = app.contacts(br#"{"auth":{}}"#, &Unlimited, Utc::now()).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("upstream_unavailable"), "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("5"));
    let r = app.interactions(br#"{"auth":{},"data":{"contact_external_id":"1"}}"#).await;
    assert_eq!(r.status, 503, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relation_or_column_the_contract_needs_fails_init_naming_it() {
    let pg = PgServer::start().await;
    pg.create_contract().await;
    let admin = pg.admin().await;
    admin
        .batch_execute(
            "CREATE VIEW no_updated_at AS SELECT id, name FROM talkdesk_contacts;
             CREATE VIEW naive_time AS SELECT id, updated_at::timestamp AS updated_at, name FROM talkdesk_contacts;
             CREATE VIEW no_contact_id AS SELECT id, type, date FROM talkdesk_interactions;
             CREATE TABLE secret_contacts (id text, updated_at timestamptz, name text);",
        )
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "GRANT SELECT ON talkdesk_contacts, talkdesk_interactions, no_updated_at, naive_time, no_contact_id TO \"{}\"",
            pg.app_user
        ))
        .await
        .unwrap();
    for (setting, value, expected) in [
        (
            "POSTGRES_CONTACTS_RELATION",
            "missing_contacts",
            "\"missing_contacts\" does not exist",
        ),
        (
            "POSTGRES_INTERACTIONS_RELATION",
            "crm.tickets",
            "\"crm\".\"tickets\" does not exist",
        ),
        ("POSTGRES_CONTACTS_RELATION", "no_updated_at", "no column `updated_at`"),
        (
            "POSTGRES_CONTACTS_RELATION",
            "naive_time",
            "`updated_at` of relation \"public\".\"naive_time\" is timestamp",
        ),
        ("POSTGRES_INTERACTIONS_RELATION", "no_contact_id", "no column `contact_id`"),
        (
            "POSTGRES_CONTACTS_RELATION",
            "secret_contacts",
            "may not read relation \"public\".\"secret_contacts\"",
        ),
    ] {
        let err = prepared_app(&pairs(&pg, &[(setting, value)]))
            .await
            .err()
            .unwrap_or_else(|| panic!("{value}: INIT should fail"))
            .to_string();
        assert!(err.starts_with(setting), "{err}");
        assert!(err.contains(expected), "{err}");
    }
    assert!(prepared_app(&pairs(&pg, &[])).await.is_ok(), "the contract's own tables pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_answers_502_saying_the_deployments_database_credentials_were_refused() {
    let pg = PgServer::start().await;
    pg.create_contract().await;
    let wrong = "wrong-password-1234";
    let app = prepared_app(&pairs(&pg, &[("POSTGRES_URL", &pg.url_with_password(wrong))]))
        .await
        .expect("refused credentials do not fail INIT");
    for r in [
        app.contacts(br#"{"auth":{}}"#, &Unlimited, Utc::now()).await,
        app.interactions(br#"{"auth":{},"data":{"contact_external_id":"1"}}"#).await,
    ] {
        assert_eq!(r.status, 502, "{}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        let message = v["error"]["message"].as_str().unwrap();
        assert_eq!(v["error"]["code"], "upstream_error");
        assert!(
            message.contains("refused the deployment's credentials") && message.contains(&pg.app_user),
            "{message}"
        );
        assert!(message.contains("Talkdesk's credentials are fine"), "{message}");
        assert!(!r.body.contains(wrong), "the password is never shown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_require_and_verify_full_connect_and_an_unknown_certificate_is_refused() {
    let pg = PgServer::start_with_tls().await;
    load(&pg, &contract_data(20, 0, 9, latest())).await;
    let cert = pg.certificate.clone().unwrap();
    let now = latest() + chrono::Duration::days(1);
    for extra in [
        vec![("POSTGRES_SSLMODE", "require")],
        vec![
            ("POSTGRES_SSLMODE", "verify-full"),
            ("POSTGRES_SSLROOTCERT", cert.to_str().unwrap()),
        ],
    ] {
        let app = app(&pg, &extra).await;
        let (contacts, _, _) = sync_run(&app, None, now).await;
        assert_eq!(contacts.len(), 20, "{extra:?}");
    }
    let untrusted = app(&pg, &[("POSTGRES_SSLMODE", "verify-full")]).await;
    let (status, body) = page(&untrusted, &json!({}), now).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("TLS"), "{body}");
}

/// The ```sql block after `<!-- postgres-example:{name} -->` in the README.
fn readme_example(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let marker = format!("<!-- postgres-example:{name} -->");
    let after = &readme[readme.find(&marker).unwrap_or_else(|| panic!("README has no {marker}")) + marker.len()..];
    let start = after.find("```sql\n").expect("a sql block follows the marker") + "```sql\n".len();
    let end = after[start..].find("\n```").expect("the block ends");
    after[start..start + end].to_string()
}

async fn explain_plan(admin: &tokio_postgres::Client, statement: &str, params: &[&str]) -> String {
    let mut text = statement.to_string();
    for (i, p) in params.iter().enumerate().rev() {
        text = text.replace(&format!("${}", i + 1), p);
    }
    let rows = admin.query(&format!("EXPLAIN {text}"), &[]).await.unwrap();
    rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_schema_examples_work_as_written_and_their_indexes_serve_the_bridge() {
    let pg = PgServer::start().await;
    let admin = pg.admin().await;
    let user = pg.app_user.clone();
    let tables = readme_example("tables")
        .lines()
        .filter(|l| !l.starts_with("CREATE ROLE"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("talkdesk_bridge", &user);
    let view = readme_example("view");
    // The tables the other tests create (and whose plans they check) are the README's, word for word.
    let words = |sql: &str| -> Vec<String> {
        sql.lines()
            .map(|l| l.split("--").next().unwrap_or_default())
            .filter(|l| !l.contains("talkdesk_bridge") && !l.contains(&user))
            .flat_map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .collect()
    };
    assert_eq!(
        words(&tables),
        words(bridge_tests::postgres::CONTRACT_SQL),
        "CONTRACT_SQL drifted from the README"
    );
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA tables_example; SET search_path = tables_example; {tables};
             CREATE SCHEMA view_example; SET search_path = view_example; {view};
             GRANT USAGE ON SCHEMA tables_example, view_example TO \"{user}\";
             GRANT SELECT ON ALL TABLES IN SCHEMA view_example TO \"{user}\";
             INSERT INTO tables_example.talkdesk_contacts (id, updated_at, name, emails, phones) VALUES
               ('10', '2026-01-01Z', 'Ten', '{{ten@acme.test}}', '{{+14155550110}}'),
               ('9', '2026-01-01Z', 'Nine', '{{nine@acme.test}}', '{{}}');
             INSERT INTO tables_example.talkdesk_interactions (id, contact_id, type, subject, date) VALUES
               ('t1', '10', 'ticket', 'Hello', '2026-01-02Z');
             INSERT INTO view_example.customers VALUES
               (42, 'Jane Roe', 'Acme', 'Jane.Roe@Example.COM', '+14155550142', '2026-01-03Z'),
               (7, 'John Roe', NULL, NULL, NULL, '2026-01-03Z');
             INSERT INTO view_example.tickets VALUES
               (1, 42, 'Broken', 'It broke', 'HIGH', 'open', '2026-01-04Z'),
               (2, 42, 'Fixed', 'It works', 'p9', 'closed', '2026-01-05Z');
             RESET search_path;"
        ))
        .await
        .unwrap_or_else(|e| panic!("the README's SQL: {}", bridge_tests::postgres::show(&e)));
    let now = latest() + chrono::Duration::days(1);

    let tables_app = app(
        &pg,
        &[
            ("POSTGRES_CONTACTS_RELATION", "tables_example.talkdesk_contacts"),
            ("POSTGRES_INTERACTIONS_RELATION", "tables_example.talkdesk_interactions"),
        ],
    )
    .await;
    let (contacts, _, _) = sync_run(&tables_app, None, now).await;
    assert_eq!(
        contacts.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        vec!["9", "10"],
        "numeric ids by value"
    );
    let (_, found) = lookup(&tables_app, json!({}), json!({"contact_emails": ["TEN@acme.test"]})).await;
    assert_eq!(found[0]["id"], "t1");

    let view_app = app(
        &pg,
        &[
            ("POSTGRES_CONTACTS_RELATION", "view_example.talkdesk_contacts"),
            ("POSTGRES_INTERACTIONS_RELATION", "view_example.talkdesk_interactions"),
        ],
    )
    .await;
    let (contacts, _, _) = sync_run(&view_app, None, now).await;
    assert_eq!(contacts.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec!["7", "42"]);
    assert_eq!(contacts[1].emails, vec!["jane.roe@example.com"], "lowercased by the view");
    for data in [
        json!({"contact_emails": ["Jane.Roe@example.com"]}),
        json!({"contact_phones": ["(415) 555-0142"]}),
        json!({"contact_external_id": "42"}),
    ] {
        let (status, found) = lookup(&view_app, json!({}), data.clone()).await;
        assert_eq!(status, 200, "{found}");
        let ids: Vec<&str> = found.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec!["2", "1"], "{data}");
        assert_eq!(found[0]["url"], "https://support.example.com/tickets/2");
        assert_eq!(
            (found[1]["priority"].as_str(), found[0]["status"].as_str()),
            (Some("high"), Some("closed"))
        );
    }

    // The view example's indexes on the base tables serve the bridge's statements through the views.
    let relation = |name: &str, columns: &[(&str, &str, &str, &str)]| {
        let mut r = contract_relation(name, columns);
        r.schema = "view_example".into();
        r
    };
    let st = sql::statements(
        &relation(
            "talkdesk_contacts",
            &[
                ("id", "text", "S", ""),
                ("updated_at", "timestamptz", "D", ""),
                ("name", "text", "S", ""),
                ("company", "text", "S", ""),
                ("emails", "_text", "A", "S"),
                ("phones", "_text", "A", "S"),
            ],
        ),
        &relation(
            "talkdesk_interactions",
            &[
                ("id", "text", "S", ""),
                ("contact_id", "text", "S", ""),
                ("type", "text", "S", ""),
                ("date", "timestamptz", "D", ""),
            ],
        ),
    )
    .unwrap();
    admin
        .batch_execute("SET enable_seqscan = off; SET enable_sort = off; SET enable_bitmapscan = off")
        .await
        .unwrap();
    let t = "'2025-01-01Z'::timestamptz";
    let keyset = explain_plan(&admin, &st.contacts_after_key, &[t, "'1'", "'2026-06-01Z'::timestamptz", "500"]).await;
    assert!(keyset.contains("customers_talkdesk_sync") && !keyset.contains("Sort"), "{keyset}");
    admin.batch_execute("RESET enable_bitmapscan").await.unwrap();
    let emails = explain_plan(
        &admin,
        st.people_by_emails.as_ref().unwrap(),
        &["ARRAY['jane.roe@example.com']", "100"],
    )
    .await;
    assert!(emails.contains("customers_talkdesk_emails"), "{emails}");
    let phones = explain_plan(&admin, st.people_by_phones.as_ref().unwrap(), &["ARRAY['+14155550142']", "100"]).await;
    assert!(phones.contains("customers_talkdesk_phones"), "{phones}");
    let of = explain_plan(&admin, &st.interactions_of, &["ARRAY['42']", "ARRAY['ticket']", "100"]).await;
    assert!(of.contains("tickets_talkdesk_contact"), "{of}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_password_comes_from_ssm_and_a_request_never_supplies_one() {
    use bridge::secrets::ssm::SsmCache;
    use bridge_tests::moto::{ManualClock, MotoServer};

    let pg = PgServer::start().await;
    load(&pg, &contract_data(30, 0, 12, latest())).await;
    let moto = MotoServer::start();
    let prefix = "/talkdesk-bridge/pg";
    let token = "inbound-token-0123456789";
    moto.put_secure(&format!("{prefix}/token-key"), "ssm-token-key-0123456789abcdef")
        .await;
    moto.put_secure(&format!("{prefix}/inbound-tokens"), token).await;
    moto.put_secure(&format!("{prefix}/postgres/password"), &pg.app_password).await;
    let clock = ManualClock::new();
    let ttl = Duration::from_secs(300);
    let cache = {
        let clock = clock.clone();
        SsmCache::new(moto.ssm_client(), prefix, ttl).with_clock(move || clock.now())
    };
    let port = pg.port.to_string();
    let app = bridge_tests::ssm_app(
        &[
            ("BRIDGE_CONNECTOR", "postgres"),
            ("BRIDGE_SSM_PREFIX", prefix),
            ("POSTGRES_HOST", pg.host.as_str()),
            ("POSTGRES_PORT", port.as_str()),
            ("POSTGRES_USER", pg.app_user.as_str()),
            ("POSTGRES_DBNAME", pg.database.as_str()),
            ("POSTGRES_SSLMODE", "disable"),
        ],
        cache,
    )
    .await
    .expect("the app starts");
    app.prepare().await.expect("the relations are checked with the password from SSM");
    let now = latest() + chrono::Duration::days(1);
    let body = json!({"auth": {"bridge_token": token, "password": "a-password-from-the-request"}}).to_string();
    let r = app.contacts(body.as_bytes(), &Unlimited, now).await;
    assert_eq!(r.status, 200, "the stored password signs in, the request's is ignored: {}", r.body);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["contacts"]
            .as_array()
            .unwrap()
            .len(),
        30
    );

    // A rotated (here: wrong) password is used once the TTL has passed, by the next new connection.
    moto.put_secure(&format!("{prefix}/postgres/password"), "not-the-password").await;
    clock.advance(ttl + Duration::from_secs(1));
    pg.restart().await;
    let r = app.contacts(body.as_bytes(), &Unlimited, now).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("refused the deployment's credentials"), "{}", r.body);
}
