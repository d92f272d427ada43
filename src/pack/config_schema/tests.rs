use serde_json::json;

use super::*;
use crate::diagnostics::Diagnose as _;

const FILE: &str = "/srv/git/clush@3f2a9c1:config.schema.yaml";

const SCHEMA: &str = "---
api_url:
  type: string
  description: Where the API lives
  required: true
api_token:
  type: string
  secret: true
  required: true
timeout:
  type: integer
  default: 30
ratio:
  type: number
verbose:
  type: boolean
mode:
  type: string
  enum: [fast, safe]
  default: safe
ssh:
  type: object
  properties:
    port:
      type: integer
      required: true
    user:
      type: string
      default: root
    key:
      type: string
      secret: true
  additionalProperties: false
servers:
  type: array
  items:
    type: object
    properties:
      host:
        type: string
        required: true
      port:
        type: integer
        default: 22
anything: {}
";

/// `(key, message)` pairs of the problems expected.
type Expected = Vec<(&'static str, &'static str)>;

fn schema() -> ConfigSchema {
    parse_config_schema(SCHEMA, FILE).unwrap()
}

fn values(value: Value) -> Map<String, Value> {
    let Value::Object(map) = value else {
        panic!("test values must be an object")
    };
    map
}

fn valid() -> Value {
    json!({"api_url": "https://api.example.org", "api_token": "{{ st2kv.system.token }}",
           "ssh": {"port": 22}})
}

/// `valid()` with `key` replaced by `value` (or removed when `value` is `None`).
fn valid_with(key: &str, value: Option<Value>) -> Map<String, Value> {
    let mut map = values(valid());
    match value {
        Some(value) => map.insert(key.to_owned(), value),
        None => map.remove(key),
    };
    map
}

fn keys_and_messages(problems: &[ConfigProblem]) -> Vec<(&str, &str)> {
    problems
        .iter()
        .map(|p| (p.key.as_str(), p.message.as_str()))
        .collect()
}

#[test]
fn valid_values_pass_without_warnings() {
    let schema = schema();
    assert_eq!(schema.check(&values(valid())).errors, vec![]);
    assert_eq!(schema.check(&values(valid())).warnings, vec![]);
    let full = json!({"api_url": "u", "api_token": "{{ st2kv.system.token }}",
        "timeout": 5, "ratio": 3, "verbose": false, "mode": "fast", "anything": [1, "x"],
        "ssh": {"port": 2222, "user": "st2"},
        "servers": [{"host": "a"}, {"host": "b", "port": 2200}]});
    assert_eq!(schema.check(&values(full)).errors, vec![]);
}

#[test]
fn invalid_values_are_reported_with_their_dotted_path() {
    let schema = schema();
    let cases: Vec<(Map<String, Value>, Expected)> = vec![
        (
            valid_with("api_url", None),
            vec![("api_url", "is required by the schema and has no default")],
        ),
        (
            valid_with("api_url", Some(Value::Null)),
            vec![("api_url", "must be string, not empty")],
        ),
        (
            valid_with("timeout", Some(json!(3.5))),
            vec![("timeout", "must be integer, not a number `3.5`")],
        ),
        (
            valid_with("timeout", Some(json!(true))),
            vec![("timeout", "must be integer, not a boolean `true`")],
        ),
        (
            valid_with("timeout", Some(json!("30"))),
            vec![("timeout", "must be integer, not a string `\"30\"`")],
        ),
        (
            valid_with("ratio", Some(json!("1.5"))),
            vec![("ratio", "must be number, not a string `\"1.5\"`")],
        ),
        (
            valid_with("mode", Some(json!("quick"))),
            vec![(
                "mode",
                "is a string `\"quick\"`, not one of `\"fast\"`, `\"safe\"`",
            )],
        ),
        (
            valid_with("ssh", Some(json!({"user": "st2"}))),
            vec![("ssh.port", "is required by the schema and has no default")],
        ),
        (
            valid_with("ssh", Some(json!({"port": "22"}))),
            vec![("ssh.port", "must be integer, not a string `\"22\"`")],
        ),
        (
            valid_with("ssh", Some(json!({"port": 22, "prot": 1}))),
            vec![(
                "ssh.prot",
                "is not in the schema, which allows no other keys here",
            )],
        ),
        (
            valid_with("ssh", Some(json!("host:22"))),
            vec![("ssh", "must be object, not a string `\"host:22\"`")],
        ),
        (
            valid_with("servers", Some(json!([{"host": "a"}, {"port": "x"}]))),
            vec![
                (
                    "servers.1.host",
                    "is required by the schema and has no default",
                ),
                ("servers.1.port", "must be integer, not a string `\"x\"`"),
            ],
        ),
        (
            valid_with("api_token", Some(json!(1234))),
            vec![("api_token", "must be string, not an integer")],
        ),
    ];
    for (given, expected) in cases {
        assert_eq!(
            keys_and_messages(&schema.check(&given).errors),
            expected,
            "for {given:?}"
        );
    }
}

#[test]
fn defaults_are_filled_in_before_validation() {
    let schema = parse_config_schema(
        "port: {type: integer, required: true, default: 22}\n\
         bad_default: {type: integer, default: \"x\"}\n\
         nullable: {type: string, required: true, default: null}\n",
        FILE,
    )
    .unwrap();
    let problems = schema.check(&Map::new()).errors;
    assert_eq!(
        keys_and_messages(&problems),
        vec![("bad_default", "must be integer, not a string `\"x\"`")]
    );
    // A null value takes the default too, as in StackStorm.
    let problems = schema
        .check(&values(json!({"port": null, "bad_default": 1})))
        .errors;
    assert_eq!(problems, vec![]);
}

#[test]
fn jinja_values_skip_type_checks_but_not_the_decrypt_kv_rule() {
    let schema = schema();
    let jinja = valid_with("timeout", Some(json!("{{ st2kv.system.timeout }}")));
    assert_eq!(schema.check(&jinja).errors, vec![]);
    let decrypted = valid_with(
        "api_token",
        Some(json!("{{ st2kv.system.token | decrypt_kv }}")),
    );
    assert_eq!(
        keys_and_messages(&schema.check(&decrypted).errors),
        vec![(
            "api_token",
            "uses the `decrypt_kv` filter on a `secret: true` key"
        )]
    );
}

#[test]
fn unknown_keys_and_static_secrets_are_warnings() {
    let schema = schema();
    let mut given = valid_with("api_token", Some(json!("hunter2")));
    given.insert("api_ulr".into(), json!("typo"));
    given.insert("ssh".into(), json!({"port": 22, "key": "-----BEGIN"}));
    assert_eq!(schema.check(&given).errors, vec![]);
    let warnings = schema.check(&given).warnings;
    assert_eq!(
        keys_and_messages(&warnings),
        vec![
            (
                "api_token",
                "is secret but given as a plain value, which StackStorm stores unencrypted"
            ),
            (
                "ssh.key",
                "is secret but given as a plain value, which StackStorm stores unencrypted"
            ),
            ("api_ulr", "is not in the schema; StackStorm ignores it"),
        ]
    );
    assert!(warnings[0].hint.as_ref().unwrap().contains("st2kv.system"));
}

#[test]
fn secret_values_never_appear_in_messages() {
    let schema = parse_config_schema(
        "token: {type: integer, secret: true}\npick: {enum: [a], secret: true}\n",
        FILE,
    )
    .unwrap();
    let problems = schema
        .check(&values(json!({"token": "hunter2", "pick": "hunter3"})))
        .errors;
    assert_eq!(problems.len(), 2);
    for problem in problems {
        assert!(!problem.message.contains("hunter"), "{problem}");
    }
}

#[test]
fn invalid_schemas_are_refused_at_the_key_line() {
    let cases = [
        ("", SchemaProblem::Empty, 1),
        ("---\n# nothing\n", SchemaProblem::Empty, 1),
        ("{}\n", SchemaProblem::Empty, 1),
        ("- a\n", SchemaProblem::NotAMapping { found: "a list" }, 1),
        (
            "ok: {}\nmy-key: {type: string}\n",
            SchemaProblem::KeyName("my-key".into()),
            2,
        ),
        (
            "ok: {}\nport: 22\n",
            SchemaProblem::NotASchema {
                key: "port".into(),
                found: "an integer",
            },
            2,
        ),
        (
            "port:\n",
            SchemaProblem::NotASchema {
                key: "port".into(),
                found: "empty",
            },
            1,
        ),
        (
            "port:\n  type: integer\n  requried: true\n",
            SchemaProblem::UnknownAttribute {
                key: "port".into(),
                attribute: "requried".into(),
            },
            1,
        ),
        (
            "port: {type: int}\n",
            SchemaProblem::UnknownType {
                key: "port".into(),
                found: "int".into(),
            },
            1,
        ),
        (
            "port: {type: [integer, \"null\"]}\n",
            SchemaProblem::TypeList { key: "port".into() },
            1,
        ),
        (
            "port: {type: integer, required: \"yes\"}\n",
            SchemaProblem::Attribute {
                key: "port".into(),
                attribute: "required",
                expected: "`true` or `false`",
            },
            1,
        ),
        (
            "mode: {enum: []}\n",
            SchemaProblem::Attribute {
                key: "mode".into(),
                attribute: "enum",
                expected: "a non-empty list",
            },
            1,
        ),
        (
            "ssh: {type: object, properties: {port: {type: short}}}\n",
            SchemaProblem::UnknownType {
                key: "ssh.port".into(),
                found: "short".into(),
            },
            1,
        ),
        (
            "ssh: {type: object, properties: [port]}\n",
            SchemaProblem::Attribute {
                key: "ssh".into(),
                attribute: "properties",
                expected: "a mapping",
            },
            1,
        ),
    ];
    for (text, expected, line) in cases {
        match parse_config_schema(text, FILE) {
            Err(PackError::ConfigSchema {
                problem, location, ..
            }) => assert_eq!((problem, location.line), (expected, line), "for {text:?}"),
            other => panic!("expected a schema problem for {text:?}, got {other:?}"),
        }
    }
}

#[test]
fn schema_errors_read_well() {
    let err = parse_config_schema("port:\n  type: integer\n  requried: true\n", FILE).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid config schema in `/srv/git/clush@3f2a9c1:config.schema.yaml`: `port` has \
         the unknown attribute `requried`"
    );
    assert!(err.hint().unwrap().starts_with("check the spelling"));
}

#[test]
fn nested_schemas_are_read_leniently() {
    let schema = parse_config_schema(
        "ssh:\n  type: object\n  properties:\n    port: {type: [integer, string], x-ui: 1}\n",
        FILE,
    )
    .unwrap();
    let ok = values(json!({"ssh": {"port": "22"}}));
    assert_eq!(schema.check(&ok).errors, vec![]);
    let bad = values(json!({"ssh": {"port": 2.5}}));
    assert_eq!(
        keys_and_messages(&schema.check(&bad).errors),
        vec![("ssh.port", "must be integer or string, not a number `2.5`")]
    );
}

/// Issue 16: PyYAML reads `yes` as true, so StackStorm takes `required: yes` as required.
#[test]
fn yaml_1_1_booleans_are_booleans_in_a_schema() {
    let schema = parse_config_schema(
        "user:\n  type: string\n  required: yes\n  secret: on\n",
        FILE,
    )
    .unwrap();
    let problems = schema.check(&Map::new());
    assert_eq!(
        keys_and_messages(&problems.errors),
        [("user", "is required by the schema and has no default")]
    );
}

/// Issue 16: what StackStorm's validator checks beyond types and `enum`: `patternProperties`
/// with a `$ref` to a sibling key (napalm and vsphere on StackStorm Exchange), `minimum`,
/// `pattern`, `anyOf`; a datastore reference stays unchecked.
#[test]
fn the_rest_of_draft_4_is_checked_as_stackstorm_checks_it() {
    let schema = parse_config_schema(
        r##"
credentials:
  type: object
  properties:
    port: {type: integer, minimum: 1, maximum: 65535}
    user: {type: string, pattern: "^[a-z]+$"}
devices:
  type: object
  additionalProperties: false
  patternProperties:
    "^[a-z0-9]+$":
      "$ref": "#/properties/credentials"
timeout:
  anyOf:
    - {type: integer, minimum: 0}
    - {type: string, enum: [never]}
"##,
        FILE,
    )
    .unwrap();
    let ok = values(json!({
        "devices": {"r1": {"port": 22, "user": "admin"}, "r2": {"port": "{{ st2kv.system.port }}"}},
        "timeout": "never",
    }));
    assert_eq!(schema.check(&ok).errors, vec![]);
    assert_eq!(schema.check(&ok).warnings, vec![]);

    let bad = values(json!({
        "devices": {"r1": {"port": 0, "user": "Admin"}, "Bad-Name": {}},
        "timeout": -1,
    }));
    let problems = schema.check(&bad).errors;
    let said: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect();
    assert!(
        said.iter().any(|p| p.starts_with(
            "devices.r1.port: does not match the schema: 0 is less than the minimum of 1"
        )),
        "{said:#?}"
    );
    assert!(
        said.iter().any(
            |p| p.starts_with("devices.r1.user: does not match the schema:")
                && p.contains("^[a-z]+$")
        ),
        "{said:#?}"
    );
    assert!(
        said.iter()
            .any(|p| p.starts_with("devices.Bad-Name: is not in the schema")),
        "{said:#?}"
    );
    assert!(
        said.iter()
            .any(|p| p.starts_with("timeout: does not match the schema")),
        "{said:#?}"
    );

    // A `$ref` that leads nowhere is refused with the schema, as st2's validator fails on it.
    let err = parse_config_schema(
        "devices:\n  type: object\n  patternProperties:\n    \"^x$\": {\"$ref\": \"#/properties/nowhere\"}\n",
        FILE,
    )
    .unwrap_err();
    assert!(err.to_string().contains("Invalid config schema"), "{err}");
}
