use std::fmt::Write as _;

use serde_json::json;

use super::*;

fn yaml(text: &str) -> Value {
    load_str(text).unwrap_or_else(|err| panic!("{text:?}: {err}"))
}

/// Issue 16: what PyYAML's `safe_load` gives for the forms YAML 1.1 and 1.2 read differently.
#[test]
fn scalars_resolve_as_pyyaml_resolves_them() {
    let cases = [
        ("yes", json!(true)),
        ("No", json!(false)),
        ("ON", json!(true)),
        ("off", json!(false)),
        ("True", json!(true)),
        ("y", json!("y")),
        ("n", json!("n")),
        ("yEs", json!("yEs")),
        ("~", Value::Null),
        ("null", Value::Null),
        ("", Value::Null),
        ("017", json!(15)),
        ("0o17", json!("0o17")),
        ("0x1F", json!(31)),
        ("0b101", json!(5)),
        ("1_000", json!(1000)),
        ("1:30", json!(90)),
        ("-1:30", json!(-90)),
        ("1:30.5", json!(90.5)),
        ("1.5", json!(1.5)),
        ("1e3", json!("1e3")),
        ("1.0e+3", json!(1000.0)),
        (".inf", json!(".inf")),
        ("2001-12-14", json!("2001-12-14")),
        ("'yes'", json!("yes")),
        ("\"017\"", json!("017")),
        ("!!str 017", json!("017")),
        ("!!int '017'", json!(15)),
        ("1.0.1", json!("1.0.1")),
    ];
    for (text, expected) in cases {
        assert_eq!(
            yaml(&format!("value: {text}\n"))["value"],
            expected,
            "{text}"
        );
    }
}

#[test]
fn merge_keys_fill_in_what_a_mapping_lacks() {
    let value = yaml(
        "base: &base\n  type: string\n  required: yes\nother: &other\n  secret: true\n\
         user:\n  <<: [*base, *other]\n  type: integer\n",
    );
    assert_eq!(
        value["user"],
        json!({"type": "integer", "required": true, "secret": true})
    );
    // A quoted `<<` is a plain key.
    assert_eq!(yaml("'<<': 1\n"), json!({"<<": 1}));
}

#[test]
fn keys_are_read_as_python_prints_them() {
    assert_eq!(
        yaml("yes: 1\n~: 2\n3: 3\n"),
        json!({"True": 1, "None": 2, "3": 3})
    );
    let err = load_str("[a]: 1\n").unwrap_err();
    assert!(err.message.contains("as a key"), "{err}");
}

#[test]
fn invalid_utf8_is_refused_at_its_byte() {
    let err = load(b"name: clush\ndescription: caf\xe9\n").unwrap_err();
    assert_eq!((err.line, err.column, err.offset), (2, 17, 28));
    assert!(
        err.message
            .starts_with("is not UTF-8: byte 0xE9 at offset 28"),
        "{err}"
    );
}

#[test]
fn hostile_files_fail_fast() {
    let started = std::time::Instant::now();
    let nested = "[".repeat(100_000);
    let err = load_str(&nested).unwrap_err();
    assert!(
        err.message.contains("deep") || err.message.contains("recursion limit"),
        "{err}"
    );

    // A billion laughs.
    let mut laughs = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let (previous, name) = (pair[0], pair[1]);
        let aliases = vec![format!("*{previous}"); 9].join(",");
        let _ = writeln!(laughs, "{name}: &{name} [{aliases}]");
    }
    let err = load_str(&laughs).unwrap_err();
    assert!(err.message.contains("expands to more than"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn one_document_and_core_tags_only() {
    let err = load_str("a: 1\n---\nb: 2\n").unwrap_err();
    assert!(err.message.contains("more than one document"), "{err}");
    assert_eq!((err.line, err.column), (2, 1));
    let err = load_str("a: !Ref b\n").unwrap_err();
    assert!(err.message.contains("`!Ref`"), "{err}");
    let err = load_str("a: [1, 2\n").unwrap_err();
    assert!(err.line >= 1, "{err}");
}

#[test]
fn what_to_yaml_writes_reads_back_the_same() {
    let value = json!({
        "yes": "yes",
        "version": "1.0",
        "count": 17,
        "ratio": 1.0e-7,
        "big": 1.0e100,
        "half": 0.5,
        "empty": "",
        "none": null,
        "flag": false,
        "nodes": ["node[001-010]", "~", {"nested": "on"}],
        "map": {},
        "list": [],
        "text": "two\nlines: \"quoted\"",
    });
    assert_eq!(yaml(&to_yaml(&value)), value);
    assert_eq!(
        to_yaml(&json!({"fanout": 16, "on": "off", "ssh_user": "root"})),
        "fanout: 16\n\"on\": \"off\"\nssh_user: \"root\"\n"
    );
}
