//! The chart's registration hook, `files/st2_register.py`, run by `python3` against a stub
//! st2api: the request it makes, and how it fails.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::thread;

use serde_json::{Value, json};

use super::HOOK;
use crate::common::repo_path;

/// A stub st2api on 127.0.0.1 answering one request with `status` and `body`; the join handle
/// gives the request it got. `None`: it accepts the connection and never answers.
fn stub_st2api(
    answer: Option<(&'static str, &'static str)>,
) -> (String, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("the hook connects");
        let mut reader = BufReader::new(stream);
        let mut request = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a request line");
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().expect("a length");
            }
            request.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("the body");
        request.push_str(&String::from_utf8_lossy(&body));
        match answer {
            Some((status, body)) => {
                let mut stream = reader.into_inner();
                write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .expect("the answer is sent");
            }
            // Hold the connection until the hook gave up.
            None => {
                let _ = reader.read_to_end(&mut Vec::new());
            }
        }
        request
    });
    (url, handle)
}

fn run_hook(api: &str, timeout: &str) -> Output {
    Command::new("python3")
        .arg(repo_path(HOOK))
        .arg("clush")
        .env("ST2_API_URL", api)
        .env("ST2_API_KEY", "k3y-never-shown")
        .env("ST2_REGISTER_TIMEOUT", timeout)
        .output()
        .expect("python3 runs the hook")
}

#[test]
fn chart_register_hook_posts_the_pack_with_the_api_key() {
    let (url, server) = stub_st2api(Some(("200 OK", r#"{"actions": 3, "sensors": 1}"#)));
    let output = run_hook(&format!("{url}/"), "10");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let request = server.join().expect("the stub ran");
    assert!(
        request.starts_with("POST /v1/packs/register HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains("St2-Api-Key: k3y-never-shown\r\n"),
        "{request}"
    );
    assert!(
        request.contains("Content-Type: application/json\r\n"),
        "{request}"
    );
    let body = request.split("\r\n\r\n").nth(1).expect("a body");
    assert_eq!(
        serde_json::from_str::<Value>(body).expect("a JSON body"),
        json!({"packs": ["clush"], "fail_on_failure": true})
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "registered pack `clush`: {\"actions\": 3, \"sensors\": 1}\n"
    );
}

#[test]
fn chart_register_hook_fails_clearly_on_an_error_answer_no_server_or_a_timeout() {
    let (url, server) = stub_st2api(Some((
        "400 Bad Request",
        r#"{"faultstring": "Failed to register pack \"clush\": bad action"}"#,
    )));
    let output = run_hook(&url, "10");
    server.join().expect("the stub ran");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "st2_register: st2api did not register pack `clush`: POST {url}/v1/packs/register: \
             HTTP 400 Bad Request: Failed to register pack \"clush\": bad action\n"
        )
    );

    // Nothing listens on a port just freed.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        format!("http://{}", listener.local_addr().expect("an address"))
    };
    let output = run_hook(&closed, "10");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("st2_register: cannot reach st2api to register pack `clush`"),
        "{stderr}"
    );

    let (url, server) = stub_st2api(None);
    let output = run_hook(&url, "0.5");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("timed out"), "{stderr}");
    assert!(!stderr.contains("k3y-never-shown"));
    drop(server);
}

/// A stub st2api answering `count` requests, one per connection, with `answer(request line)`;
/// the join handle gives every request it got (request line, then body).
fn stub_st2api_routes(
    count: usize,
    answer: fn(&str) -> (&'static str, String),
) -> (String, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let handle = thread::spawn(move || {
        let mut requests = Vec::new();
        for _ in 0..count {
            let (stream, _) = listener.accept().expect("the hook connects");
            let mut reader = BufReader::new(stream);
            let mut first = String::new();
            reader.read_line(&mut first).expect("a request line");
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("a header");
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().expect("a length");
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("the body");
            let (status, answer) = answer(first.trim_end());
            let mut stream = reader.into_inner();
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            )
            .expect("the answer is sent");
            requests.push(format!(
                "{} {}",
                first.trim_end(),
                String::from_utf8_lossy(&body)
            ));
        }
        requests
    });
    (url, handle)
}

fn run_hook_with(api: &str, args: &[&str]) -> Output {
    Command::new("python3")
        .arg(repo_path(HOOK))
        .args(args)
        .env("ST2_API_URL", api)
        .env("ST2_API_KEY", "k3y-never-shown")
        .env("ST2_REGISTER_TIMEOUT", "10")
        .output()
        .expect("python3 runs the hook")
}

/// Issue 15: the hook is also the chart's `registered` and `purge`, through st2api.
#[test]
fn chart_hook_lists_and_purges_a_packs_content_through_st2api() {
    let (url, server) = stub_st2api_routes(6, |request| {
        let body = if request.starts_with("GET /v1/actions?pack=clush&limit=100&offset=0 ") {
            r#"[{"ref": "clush.run"}, {"ref": "clush.old"}]"#
        } else if request.starts_with("GET /v1/sensortypes?pack=clush") {
            r#"[{"ref": "clush.On", "enabled": true}, {"ref": "clush.Off", "enabled": false}]"#
        } else {
            "[]"
        };
        ("200 OK", body.to_string())
    });
    let output = run_hook_with(&url, &["registered", "clush"]);
    assert!(output.status.success(), "{output:?}");
    let held: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(
        held,
        json!([
            {"kind": "action", "ref": "clush.run"},
            {"kind": "action", "ref": "clush.old"},
            {"kind": "sensor", "ref": "clush.On"},
        ])
    );
    let requests = server.join().expect("the stub ran");
    let paths: Vec<&str> = requests
        .iter()
        .map(|r| r.split(' ').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        paths,
        [
            "/v1/actions?pack=clush&limit=100&offset=0",
            "/v1/rules?pack=clush&limit=100&offset=0",
            "/v1/sensortypes?pack=clush&limit=100&offset=0",
            "/v1/triggertypes?pack=clush&limit=100&offset=0",
            "/v1/actionalias?pack=clush&limit=100&offset=0",
            "/v1/policies?pack=clush&limit=100&offset=0",
        ]
    );

    let (url, server) = stub_st2api_routes(4, |request| match request.split(' ').next() {
        Some("GET") => (
            "200 OK",
            r#"{"ref": "clush.On", "enabled": true}"#.to_string(),
        ),
        Some("DELETE") if request.contains("/v1/rules/") => (
            "404 Not Found",
            r#"{"faultstring": "not found"}"#.to_string(),
        ),
        _ => ("200 OK", String::new()),
    });
    for args in [
        ["purge", "action", "clush.old"],
        ["purge", "sensor", "clush.On"],
        ["purge", "rule", "clush.gone"],
    ] {
        let output = run_hook_with(&url, &args);
        assert!(output.status.success(), "{args:?}: {output:?}");
    }
    let requests = server.join().expect("the stub ran");
    assert!(
        requests[0].starts_with("DELETE /v1/actions/clush.old HTTP/1.1"),
        "{requests:?}"
    );
    assert!(
        requests[1].starts_with("GET /v1/sensortypes/clush.On HTTP/1.1"),
        "{requests:?}"
    );
    assert!(
        requests[2].starts_with("PUT /v1/sensortypes/clush.On HTTP/1.1"),
        "{requests:?}"
    );
    assert!(
        requests[2].ends_with(r#"{"ref": "clush.On", "enabled": false}"#),
        "{requests:?}"
    );
    assert!(
        requests[3].starts_with("DELETE /v1/rules/clush.gone HTTP/1.1"),
        "{requests:?}"
    );
    let output = run_hook_with("http://127.0.0.1:9", &["purge", "bogus", "x"]);
    assert_eq!(output.status.code(), Some(1));
}
